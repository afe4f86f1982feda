"""Run a function in a forked child and get its JSON result: keeps heavy imports (pyroute2) and netlink work
out of the long-lived shim's memory."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import traceback
from collections.abc import Callable
from typing import Any

from runtime.runvm.errors import RunvmError


async def call(fn: Callable[..., Any], *args: Any, timeout: float = 60) -> Any:
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            result = {"ok": fn(*args)}
        except BaseException as e:
            result = {"error": f"{e.__class__.__name__}: {e}", "trace": traceback.format_exc()}
        data = json.dumps(result).encode()
        while data:
            n = os.write(w, data)
            data = data[n:]
        os._exit(0)
    os.close(w)
    os.set_blocking(r, False)
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()
    chunks: list[bytes] = []

    def readable() -> None:
        try:
            chunk = os.read(r, 1 << 16)
        except BlockingIOError:
            return
        if chunk:
            chunks.append(chunk)
        elif not done.done():
            done.set_result(None)

    loop.add_reader(r, readable)
    try:
        await asyncio.wait_for(done, timeout)
    finally:
        loop.remove_reader(r)
        os.close(r)
        for _ in range(200):  # the child exits right after writing; never block the loop on it for long
            if os.waitpid(pid, os.WNOHANG)[0]:
                break
            await asyncio.sleep(0.005)
        else:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
    try:
        result = json.loads(b"".join(chunks) or b"{}")
    except ValueError as e:
        raise RunvmError(f"{getattr(fn, '__name__', fn)}: garbled result") from e
    if "error" in result or "ok" not in result:
        raise RunvmError(f"{getattr(fn, '__name__', fn)}: {result.get('error', 'no result')}")
    return result["ok"]
