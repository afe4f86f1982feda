"""Host side of a process's stdio: host fds (the pipes or pty containerd gave us) to and from agent streams,
with the same credit rules as the agent, so 10 MiB of output or a slow reader never deadlock or lose bytes.

Works on any loop with add_reader/remove_reader/add_writer/remove_writer/call_soon: asyncio's (exec-shim) or
the resident vm-shim's small selectors loop."""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Callable

from runtime.agent import protocol

TYPE_CHECKING = False  # not typing's: importing typing costs every resident shim ~0.7 MB
if TYPE_CHECKING:
    from typing import Any

Send = Callable[[bytes], None]


def _pollable(fd: int) -> bool:
    mode = os.fstat(fd).st_mode
    return not stat.S_ISREG(mode) and not stat.S_ISDIR(mode)


class FdToStream:
    """Read a host fd, send DATA frames within the granted credit, then EOF."""

    def __init__(self, loop: Any, fd: int, stream: int, send: Send, close_fd: bool = True) -> None:
        self.loop, self.fd, self.stream, self.send, self.close_fd = loop, fd, stream, send, close_fd
        self.credit = protocol.WINDOW
        self.done = False
        self.reading = False
        self.pollable = _pollable(fd)
        self.pumping = False
        self.fd_closed = False

    def start(self) -> None:
        if self.pollable:
            os.set_blocking(self.fd, False)
            try:
                self._resume()
                return
            except PermissionError:  # epoll refuses some character devices (/dev/null)
                self.pollable = False
                os.set_blocking(self.fd, True)
        self.pumping = True
        self.loop.call_soon(self._pump)

    def _pump(self) -> None:
        """Regular files and /dev/null cannot be polled, but never block either: one chunk per loop turn, within
        the credit (no worker thread: the shims fork, and forking beside a thread can deadlock)."""
        if self.done or self.credit <= 0:
            return  # grant() reschedules
        data = os.read(self.fd, min(protocol.CHUNK, self.credit))
        if not data:
            self.finish()
            return
        self.credit -= len(data)
        self.send(protocol.frame(protocol.DATA, self.stream, data))
        self.loop.call_soon(self._pump)

    def _resume(self) -> None:
        if self.pollable and not self.done and not self.reading and self.credit > 0:
            self.loop.add_reader(self.fd, self._readable)
            self.reading = True

    def _pause(self) -> None:
        if self.reading:
            self.loop.remove_reader(self.fd)
            self.reading = False

    def grant(self, amount: int) -> None:
        starved = self.credit <= 0
        self.credit += amount
        if self.pumping and starved:
            self.loop.call_soon(self._pump)
        else:
            self._resume()

    def _readable(self) -> None:
        try:
            data = os.read(self.fd, min(protocol.CHUNK, self.credit))
        except BlockingIOError:
            return
        except OSError as e:
            if e.errno not in (errno.EIO, errno.EBADF):
                raise
            data = b""
        if not data:
            self.finish()
            return
        self.credit -= len(data)
        self.send(protocol.frame(protocol.DATA, self.stream, data))
        if self.credit <= 0:
            self._pause()

    def finish(self) -> None:
        if self.done:
            return
        self._pause()
        self.done = True
        self.send(protocol.frame(protocol.EOF, self.stream))
        self._close()

    def stop(self) -> None:
        """The process is gone: stop reading without sending anything more."""
        self._pause()
        self.done = True
        self._close()

    def _close(self) -> None:
        """Once: a second close(2) of a recycled fd number would close someone else's file."""
        if self.close_fd and not self.fd_closed:
            self.fd_closed = True
            with contextlib.suppress(OSError):
                os.close(self.fd)


class StreamToFd:
    """DATA frames into a host fd; credit is returned only for bytes the fd accepted."""

    def __init__(self, loop: Any, fd: int, stream: int, send: Send, close_fd: bool = True) -> None:
        self.loop, self.fd, self.stream, self.send, self.close_fd = loop, fd, stream, send, close_fd
        self.pending = bytearray()
        self.eof = False
        self.closed = False
        self.writing = False
        self.flushed = False
        self._on_flushed: list[Callable[[], None]] = []
        self.pollable = _pollable(fd)
        if self.pollable:
            os.set_blocking(fd, False)

    def data(self, payload: bytes) -> None:
        if self.closed:
            self.send(protocol.credit(self.stream, len(payload)))
            return
        self.pending += payload
        self._flush()

    def end(self) -> None:
        self.eof = True
        self._flush()

    def _flush(self) -> None:
        written = 0
        while self.pending and not self.closed:
            try:
                n = os.write(self.fd, self.pending[: protocol.CHUNK])
            except BlockingIOError:
                break
            except OSError as e:
                if e.errno not in (errno.EPIPE, errno.EIO, errno.EBADF):
                    raise
                written += len(self.pending)  # nobody reads any more: discard, keep the sender unblocked
                self.pending.clear()
                self.closed = True
                break
            del self.pending[:n]
            written += n
        if written:
            self.send(protocol.credit(self.stream, written))
        if self.pending and not self.closed and not self.writing:
            self.loop.add_writer(self.fd, self._flush)
            self.writing = True
        elif (not self.pending or self.closed) and self.writing:
            self.loop.remove_writer(self.fd)
            self.writing = False
        if self.eof and not self.pending:
            self._close()

    def _close(self) -> None:
        if self.close_fd and not self.closed:
            with contextlib.suppress(OSError):
                os.close(self.fd)
        self.closed = True
        if not self.flushed:
            self.flushed = True
            for cb in self._on_flushed:
                cb()

    def when_flushed(self, cb: Callable[[], None]) -> None:
        """cb() once everything up to EOF has reached the fd (at once if it already has)."""
        if self.flushed:
            cb()
        else:
            self._on_flushed.append(cb)
