"""The agent's end of the host channel on its asyncio loop (runtime.wire's connection over the virtio-serial
port's fd), and the relays between it and processes' stdio (runtime.wire.flow's credit windows)."""

from __future__ import annotations

import asyncio
import errno
import os
from collections.abc import Callable
from typing import Any

from runtime.wire.connection import Connection, Reply
from runtime.wire.flow import Backlog, Window
from runtime.wire.frames import CHUNK, WireError

FrameHandler = Callable[[int, int, bytes], None]
HANGUP = (errno.EPIPE, errno.ECONNRESET, errno.EIO)


class Channel:
    """Framed, buffered, non-blocking I/O on the virtio-serial port. Survives the host side reconnecting
    (each VM restored from a template gets a new host end): a new session of the same connection."""

    def __init__(self, fd: int, on_frame: FrameHandler, on_reset: Callable[[], None]) -> None:
        self.fd = fd
        os.set_blocking(fd, False)
        self.loop = asyncio.get_running_loop()
        self.on_frame = on_frame
        self.on_reset = on_reset
        self.wire = Connection("host")
        self.out = bytearray()
        self._writing = False
        self._reading = False
        self._start_reading()

    @property
    def session(self) -> int:
        """Pass it to reply(): an answer computed across a reconnection is not sent to the new host end."""
        return self.wire.session

    def _start_reading(self) -> None:
        if not self._reading:
            self.loop.add_reader(self.fd, self._readable)
            self._reading = True

    def _hangup(self) -> None:
        """No host end: poll until one connects, then start from a clean frame boundary."""
        if self._reading:
            self.loop.remove_reader(self.fd)
            self._reading = False
        if self._writing:
            self.loop.remove_writer(self.fd)
            self._writing = False
        self.out.clear()
        for failed in self.wire.reset():
            _resolve(failed)
        self.on_reset()
        self.loop.call_later(0.02, self._start_reading)

    def _readable(self) -> None:
        try:
            data = os.read(self.fd, 1 << 16)
        except BlockingIOError:
            return
        except OSError as e:
            if e.errno in HANGUP:
                self._hangup()
                return
            raise
        if not data:
            self._hangup()
            return
        try:
            events = self.wire.receive(data)
        except WireError:
            self._hangup()
            return
        for ev in events:
            if isinstance(ev, Reply):
                _resolve(ev)
            else:
                self.on_frame(ev.kind, ev.ident, ev.payload)

    def send(self, data: bytes) -> None:
        if data:
            self.out += data
            self._flush()

    def reply(self, ident: int, body: dict[str, Any], session: int | None = None) -> None:
        self.send(self.wire.reply(ident, body, session))

    def event(self, body: dict[str, Any]) -> None:
        self.send(self.wire.event(body))

    async def ask(self, body: dict[str, Any], timeout: float = 10) -> dict[str, Any]:
        """A request the other way round (the DNS relay): the host's reply, or {"ok": False, "error": ...} when
        it does not answer in time or goes away."""
        fut: asyncio.Future[Reply] = self.loop.create_future()
        ident, data = self.wire.request(body, fut)
        self.send(data)
        try:
            return (await asyncio.wait_for(fut, timeout)).body
        except TimeoutError:
            expired = self.wire.expire(ident, timeout)
            return expired.body if expired else {"ok": False, "error": "host closed"}
        except asyncio.CancelledError:
            self.wire.forget(ident)
            raise

    def _flush(self) -> None:
        while self.out:
            try:
                n = os.write(self.fd, self.out[: 1 << 16])
            except BlockingIOError:
                break
            except OSError as e:
                if e.errno in HANGUP:
                    self._hangup()
                    return
                raise
            del self.out[:n]
        if self.out and not self._writing:
            self.loop.add_writer(self.fd, self._flush)
            self._writing = True
        elif not self.out and self._writing:
            self.loop.remove_writer(self.fd)
            self._writing = False


def _resolve(reply: Reply) -> None:
    fut = reply.token
    if fut is not None and not fut.done():
        fut.set_result(reply)


class OutStream:
    """A process's stdout/stderr (or pty master) to the host, never more in flight than the host granted."""

    def __init__(self, chan: Channel, stream: int, fd: int, on_done: Callable[[], None]) -> None:
        self.chan, self.stream, self.fd, self.on_done = chan, stream, fd, on_done
        self.window = Window(stream)
        self.reading = False
        os.set_blocking(fd, False)
        self._resume()

    @property
    def done(self) -> bool:
        return self.window.done

    def _resume(self) -> None:
        if not self.reading and self.window.open:
            self.chan.loop.add_reader(self.fd, self._readable)
            self.reading = True

    def _pause(self) -> None:
        if self.reading:
            self.chan.loop.remove_reader(self.fd)
            self.reading = False

    def grant(self, amount: int) -> None:
        self.window.grant(amount)
        self._resume()

    def _readable(self) -> None:
        try:
            data = os.read(self.fd, self.window.allowance())
        except BlockingIOError:
            return
        except OSError as e:
            if e.errno != errno.EIO:  # EIO: a pty whose last slave closed
                raise
            data = b""
        if not data:
            self.finish()
            return
        self.chan.send(self.window.data(data))
        if not self.window.open:
            self._pause()

    def flush_buffered(self) -> None:
        """Send everything the pipe holds now, past the credit if need be (at most a pipe's capacity; the credit
        comes back as the host writes it out). For when no more reads will follow: the writers are frozen for a
        checkpoint, or gone, and the bytes would otherwise leave with the VM."""
        while not self.window.done:
            try:
                data = os.read(self.fd, CHUNK)
            except OSError:
                return
            if not data:
                return
            self.chan.send(self.window.data(data))
            if not self.window.open:
                self._pause()

    def drain_and_finish(self) -> None:
        """The process is gone but something still holds the pipe: send what is buffered, then end."""
        self.flush_buffered()
        self.finish()

    def finish(self) -> None:
        if self.window.done:
            return
        self._pause()
        eof = self.window.eof()
        os.close(self.fd)
        self.chan.send(eof)
        self.on_done()


class InStream:
    """Host bytes to a process's stdin; credit goes back only once the bytes reached the process's pipe."""

    def __init__(self, chan: Channel, stream: int, fd: int, closable: bool) -> None:
        self.chan, self.stream, self.fd, self.closable = chan, stream, fd, closable
        self.backlog = Backlog(stream)
        self.fd_closed = False
        self.writing = False
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
                if e.errno not in (errno.EPIPE, errno.EIO):
                    raise
                b.drop()  # the reader is gone: drop, but keep the host's credit flowing
                self.close()
                break
            b.delivered(n)
        self.chan.send(b.credit())
        if b.pending and not self.writing and not b.closed:
            self.chan.loop.add_writer(self.fd, self._flush)
            self.writing = True
        elif (not b.pending or b.closed) and self.writing:
            self.chan.loop.remove_writer(self.fd)
            self.writing = False
        if b.finished and self.closable:
            self.close()

    def close(self) -> None:
        self.backlog.closed = True
        if self.writing:
            self.chan.loop.remove_writer(self.fd)
            self.writing = False
        if not self.fd_closed:
            self.fd_closed = True
            os.close(self.fd)
