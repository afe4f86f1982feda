"""The agent's end of the host channel, and the relays between it and processes' stdio (asyncio, one thread)."""

from __future__ import annotations

import asyncio
import errno
import os
from collections.abc import Callable

from agent import protocol

FrameHandler = Callable[[int, int, bytes], None]


class Channel:
    """Framed, buffered, non-blocking I/O on the virtio-serial port. Survives the host side reconnecting
    (each VM restored from a template gets a new host end)."""

    def __init__(self, fd: int, on_frame: FrameHandler, on_reset: Callable[[], None]) -> None:
        self.fd = fd
        os.set_blocking(fd, False)
        self.loop = asyncio.get_running_loop()
        self.on_frame = on_frame
        self.on_reset = on_reset
        self.decoder = protocol.Decoder()
        self.out = bytearray()
        self._writing = False
        self._reading = False
        self._start_reading()

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
        self.decoder = protocol.Decoder()
        self.out.clear()
        self.on_reset()
        self.loop.call_later(0.02, self._start_reading)

    def _readable(self) -> None:
        try:
            data = os.read(self.fd, 1 << 16)
        except BlockingIOError:
            return
        except OSError as e:
            if e.errno in (errno.EPIPE, errno.ECONNRESET, errno.EIO):
                self._hangup()
                return
            raise
        if not data:
            self._hangup()
            return
        try:
            frames = self.decoder.feed(data)
        except ValueError:
            self._hangup()
            return
        for kind, ident, payload in frames:
            self.on_frame(kind, ident, payload)

    def send(self, data: bytes) -> None:
        self.out += data
        self._flush()

    def _flush(self) -> None:
        while self.out:
            try:
                n = os.write(self.fd, self.out[: 1 << 16])
            except BlockingIOError:
                break
            except OSError as e:
                if e.errno in (errno.EPIPE, errno.ECONNRESET, errno.EIO):
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


class OutStream:
    """A process's stdout/stderr (or pty master) to the host, never more in flight than the host granted."""

    def __init__(self, chan: Channel, stream: int, fd: int, on_done: Callable[[], None]) -> None:
        self.chan, self.stream, self.fd, self.on_done = chan, stream, fd, on_done
        self.credit = protocol.WINDOW
        self.done = False
        self.reading = False
        os.set_blocking(fd, False)
        self._resume()

    def _resume(self) -> None:
        if not self.done and not self.reading and self.credit > 0:
            self.chan.loop.add_reader(self.fd, self._readable)
            self.reading = True

    def _pause(self) -> None:
        if self.reading:
            self.chan.loop.remove_reader(self.fd)
            self.reading = False

    def grant(self, amount: int) -> None:
        self.credit += amount
        self._resume()

    def _readable(self) -> None:
        try:
            data = os.read(self.fd, min(protocol.CHUNK, self.credit))
        except BlockingIOError:
            return
        except OSError as e:
            if e.errno != errno.EIO:  # EIO: a pty whose last slave closed
                raise
            data = b""
        if not data:
            self.finish()
            return
        self.credit -= len(data)
        self.chan.send(protocol.frame(protocol.DATA, self.stream, data))
        if self.credit <= 0:
            self._pause()

    def flush_buffered(self) -> None:
        """Send everything the pipe holds now, past the credit if need be (at most a pipe's capacity; the credit
        comes back as the host writes it out). For when no more reads will follow: the writers are frozen for a
        checkpoint, or gone, and the bytes would otherwise leave with the VM."""
        while not self.done:
            try:
                data = os.read(self.fd, protocol.CHUNK)
            except (BlockingIOError, OSError):
                return
            if not data:
                return
            self.credit -= len(data)
            self.chan.send(protocol.frame(protocol.DATA, self.stream, data))
        if self.credit <= 0:
            self._pause()

    def drain_and_finish(self) -> None:
        """The process is gone but something still holds the pipe: send what is buffered, then end."""
        self.flush_buffered()
        self.finish()

    def finish(self) -> None:
        if self.done:
            return
        self._pause()
        self.done = True
        os.close(self.fd)
        self.chan.send(protocol.frame(protocol.EOF, self.stream))
        self.on_done()


class InStream:
    """Host bytes to a process's stdin; credit goes back only once the bytes reached the process's pipe."""

    def __init__(self, chan: Channel, stream: int, fd: int, closable: bool) -> None:
        self.chan, self.stream, self.fd, self.closable = chan, stream, fd, closable
        self.pending = bytearray()
        self.eof = False
        self.closed = False
        self.writing = False
        os.set_blocking(fd, False)

    def data(self, payload: bytes) -> None:
        if self.closed:
            self.chan.send(protocol.credit(self.stream, len(payload)))
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
                if e.errno not in (errno.EPIPE, errno.EIO):
                    raise
                written += len(self.pending)  # the reader is gone: drop, but keep the host's credit flowing
                self.pending.clear()
                self.close()
                break
            del self.pending[:n]
            written += n
        if written:
            self.chan.send(protocol.credit(self.stream, written))
        if self.pending and not self.writing and not self.closed:
            self.chan.loop.add_writer(self.fd, self._flush)
            self.writing = True
        elif (not self.pending or self.closed) and self.writing:
            self.chan.loop.remove_writer(self.fd)
            self.writing = False
        if self.eof and not self.pending and self.closable:
            self.close()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            if self.writing:
                self.chan.loop.remove_writer(self.fd)
                self.writing = False
            os.close(self.fd)
