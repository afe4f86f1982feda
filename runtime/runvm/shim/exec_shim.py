"""The exec-shim: one per `docker exec`, forked by `runvm exec`. containerd signals its pid directly, so every
signal is forwarded to the guest process; it relays the inherited stdio through the vm-shim and exits with the
process's exit code."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import termios
import traceback
import tty
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runtime.runvm.errors import RunvmError
from runtime.runvm.shim import console
from runtime.runvm.shim.link import Link
from runtime.runvm.shim.quiet import quiet_python_streams
from runtime.runvm.shim.relay import FdToStream, StreamToFd
from runtime.wire import frames

SKIP = (signal.SIGKILL, signal.SIGSTOP, signal.SIGCHLD, signal.SIGWINCH, signal.SIGPIPE, signal.SIGTTIN,
        signal.SIGTTOU, signal.SIGTSTP, signal.SIGCONT)


@dataclass
class ExecRequest:
    sock_dir: Path
    exec_id: str
    process: dict[str, Any]
    ready_fd: int | None
    console_socket: str | None = None


def main(req: ExecRequest) -> None:
    code = 255
    quiet_python_streams(Path(os.devnull))
    try:
        os.setsid()
        code = asyncio.run(ExecShim(req).run())
    except BaseException as e:
        if req.ready_fd is not None:
            with contextlib.suppress(OSError):
                os.write(req.ready_fd, ("error " + (str(e) if isinstance(e, RunvmError)
                                                    else f"{e!r}\n{traceback.format_exc()}")).encode())
    finally:
        os._exit(code)


def _resolver(fut: asyncio.Future[None]) -> Callable[[], None]:
    def resolve() -> None:
        if not fut.done():
            fut.set_result(None)
    return resolve


class ExecShim:
    def __init__(self, req: ExecRequest) -> None:
        self.req = req
        self.tty = bool(req.process.get("terminal"))
        self.streams: dict[str, int] | None = None
        self.backlog: list[tuple[int, int, bytes]] = []
        self.outputs: dict[int, StreamToFd] = {}
        self.stdin: FdToStream | None = None
        self.exit: asyncio.Future[int] | None = None
        self.link: Link | None = None
        self.slave: int | None = None

    def _send(self, data: bytes) -> None:
        if self.link is not None:
            self.link.send(data)

    def _on_frame(self, kind: int, ident: int, payload: bytes) -> None:
        if self.streams is None:
            self.backlog.append((kind, ident, payload))  # frames can overtake the exec reply
            return
        if kind == frames.EVENT:
            ev = json.loads(payload)
            if (ev.get("event") == "exit" and ev.get("process") == self.req.exec_id and self.exit is not None
                    and not self.exit.done()):
                self.exit.set_result(frames.exit_code(ev.get("status") or {}))
        elif kind in (frames.DATA, frames.EOF) and ident in self.outputs:
            out = self.outputs[ident]
            out.data(payload) if kind == frames.DATA else out.end()
        elif kind == frames.CREDIT and self.stdin is not None and ident == self.streams["stdin"]:
            self.stdin.grant(frames.credit_amount(payload))

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        self.exit = loop.create_future()
        try:
            reader, writer = await asyncio.open_unix_connection(str(self.req.sock_dir / "shim.sock"))
        except OSError as e:
            raise RunvmError(f"container not running (its shim does not answer: {e.strerror})") from None
        self.link = Link(reader, writer, self._on_frame, name="vm-shim")
        process = dict(self.req.process)
        if self.tty and self.req.console_socket is None:
            raise RunvmError("a terminal was requested but no --console-socket was given")
        reply = await self.link.request({"op": "exec", "id": self.req.exec_id, "process": process}, timeout=60)
        streams = reply["streams"]
        self._stdio(streams)
        self.streams = streams
        for frame in self.backlog:
            self._on_frame(*frame)
        self.backlog.clear()
        for sig in signal.Signals:
            if sig not in SKIP:
                with contextlib.suppress(OSError, RuntimeError, ValueError):
                    loop.add_signal_handler(sig, self._forward, int(sig))
        if self.tty:
            loop.add_signal_handler(signal.SIGWINCH, self._winch)
        if self.stdin is not None:
            self.stdin.start()
        if self.req.ready_fd is not None:
            os.write(self.req.ready_fd, b"ok")
            os.close(self.req.ready_fd)
        ends: list[asyncio.Future[Any]] = [self.exit, self.link.closed]
        await asyncio.wait(ends, return_when=asyncio.FIRST_COMPLETED)
        code = self.exit.result() if self.exit.done() else 255
        if self.stdin is not None:
            self.stdin.stop()
        flushes = []
        for out in self.outputs.values():
            fut: asyncio.Future[None] = loop.create_future()
            out.when_flushed(_resolver(fut))
            flushes.append(fut)
        if flushes:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*flushes), 5)
        return code

    def _stdio(self, streams: dict[str, int]) -> None:
        if self.tty:
            master, slave = os.openpty()
            tty.setraw(slave, termios.TCSANOW)
            console.send_master(self.req.console_socket or "", master)
            os.close(master)
            import fcntl

            with contextlib.suppress(OSError):
                fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
            self.slave = slave
            loop = asyncio.get_running_loop()
            self.outputs = {streams["stdout"]: StreamToFd(loop, os.dup(slave), streams["stdout"], self._send)}
            self.stdin = FdToStream(loop, os.dup(slave), streams["stdin"], self._send)
            for fd in (0, 1, 2):
                with contextlib.suppress(OSError):
                    os.close(fd)
        else:
            loop = asyncio.get_running_loop()
            self.outputs = {streams["stdout"]: StreamToFd(loop, 1, streams["stdout"], self._send),
                            streams["stderr"]: StreamToFd(loop, 2, streams["stderr"], self._send)}
            self.stdin = FdToStream(loop, 0, streams["stdin"], self._send)

    def _forward(self, sig: int) -> None:
        if self.link is not None:
            asyncio.get_running_loop().create_task(self._quiet(self.link.request(
                {"op": "exec_kill", "id": self.req.exec_id, "signal": sig})))

    def _winch(self) -> None:
        if self.slave is not None and self.link is not None:
            rows, cols = console.window_size(self.slave)
            asyncio.get_running_loop().create_task(self._quiet(self.link.request(
                {"op": "resize", "process": self.req.exec_id, "rows": rows, "cols": cols})))

    @staticmethod
    async def _quiet(coro: Any) -> None:
        with contextlib.suppress(Exception):
            await coro
