"""Run a function in a forked child and get its JSON result: keeps heavy imports (pyroute2) and netlink work
out of the long-lived shim's memory."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from collections.abc import Callable
from typing import Any

from runtime.runvm.errors import RunvmError


def _only(keep: set[int]) -> None:
    """In the child: nothing but what it needs. Any other fd it kept (a hook's pipe, the container's stdio) would
    hold the other side's EOF hostage for as long as the child lives."""
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        if fd not in keep:
            os.dup2(null, fd)
    low = 3  # every gap between the kept fds (close_range(2): no listing of /proc/self/fd)
    for fd in sorted(k for k in keep if k > 2):
        os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, os.sysconf("SC_OPEN_MAX"))


async def call(fn: Callable[..., Any], *args: Any, timeout: float = 60, keep: tuple[int, ...] = ()) -> Any:
    """fn(*args) in a forked child; `keep` lists the fds (besides the result pipe) it uses."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        signal.set_wakeup_fd(-1)  # the parent loop's: a signal here must not look like one to the parent
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        _only({w, *keep})
        try:
            result = {"ok": fn(*args)}
        except BaseException as e:  # report anything, then leave without touching the parent's loop
            import traceback

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
