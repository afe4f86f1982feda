"""Host side of a process's stdio: host fds (the pipes or pty containerd gave us) to and from agent streams.
The credit accounting is runtime.wire.flow's, the same as the agent's, so 10 MiB of output or a slow reader
never deadlock or lose bytes; what is here is the fd I/O.

Works on any loop with add_reader/remove_reader/add_writer/remove_writer/call_soon: asyncio's (exec-shim) or
the resident vm-shim's small selectors loop."""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Callable

from runtime.wire.flow import Backlog, Window

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
        self.window = Window(stream)
        self.reading = False
        self.pollable = _pollable(fd)
        self.pumping = False
        self.fd_closed = False

    @property
    def credit(self) -> int:
        return self.window.credit

    @property
    def done(self) -> bool:
        return self.window.done

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
        want = self.window.allowance()
        if not want:
            return  # grant() reschedules
        data = os.read(self.fd, want)
        if not data:
            self.finish()
            return
        self.send(self.window.data(data))
        self.loop.call_soon(self._pump)

    def _resume(self) -> None:
        if self.pollable and not self.reading and self.window.open:
            self.loop.add_reader(self.fd, self._readable)
            self.reading = True

    def _pause(self) -> None:
        if self.reading:
            self.loop.remove_reader(self.fd)
            self.reading = False

    def grant(self, amount: int) -> None:
        if self.window.grant(amount) and self.pumping:
            self.loop.call_soon(self._pump)
        elif not self.pumping:
            self._resume()

    def _readable(self) -> None:
        try:
            data = os.read(self.fd, self.window.allowance())
        except BlockingIOError:
            return
        except OSError as e:
            if e.errno not in (errno.EIO, errno.EBADF):
                raise
            data = b""
        if not data:
            self.finish()
            return
        self.send(self.window.data(data))
        if not self.window.open:
            self._pause()

    def finish(self) -> None:
        if self.window.done:
            return
        self._pause()
        self.send(self.window.eof())
        self._close()

    def stop(self) -> None:
        """The process is gone: stop reading without sending anything more."""
        self._pause()
        self.window.done = True
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
        self.backlog = Backlog(stream)
        self.fd_closed = False
        self.writing = False
        self.flushed = False
        self._on_flushed: list[Callable[[], None]] = []
        self.pollable = _pollable(fd)
        if self.pollable:
            os.set_blocking(fd, False)

    @property
    def closed(self) -> bool:
        return self.backlog.closed

    def data(self, payload: bytes) -> None:
        self.backlog.data(payload)
        self._flush()

    def end(self) -> None:
        self.backlog.end()
        self._flush()

    def _flush(self) -> None:
        b = self.backlog
        while b.pending and not b.closed:
            try:
                n = os.write(self.fd, b.chunk())
            except BlockingIOError:
                break
            except OSError as e:
                if e.errno not in (errno.EPIPE, errno.EIO, errno.EBADF):
                    raise
                b.drop()  # nobody reads any more: discard, keep the sender unblocked
                break
            b.delivered(n)
        credit = b.credit()
        if credit:
            self.send(credit)
        if b.pending and not b.closed and not self.writing:
            self.loop.add_writer(self.fd, self._flush)
            self.writing = True
        elif (not b.pending or b.closed) and self.writing:
            self.loop.remove_writer(self.fd)
            self.writing = False
        if b.finished:
            self._close()

    def _close(self) -> None:
        """Once (see FdToStream._close), also after a write failed: the fd is still ours then."""
        if self.close_fd and not self.fd_closed:
            with contextlib.suppress(OSError):
                os.close(self.fd)
        self.fd_closed = True
        self.backlog.closed = True
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
