"""runtime.wire's framed connection on the resident shim's selector loop: requests whose replies go to
callbacks, everything else to on_frame. The agent's channel and every control or exec-shim client use it."""

from __future__ import annotations

import contextlib
import errno
import socket
from collections.abc import Callable

from runtime.runvm.shim.loop import Loop
from runtime.wire.connection import Connection, Reply
from runtime.wire.frames import ConnectionClosed, WireError

TYPE_CHECKING = False  # not typing's: importing typing costs every resident shim ~0.7 MB
if TYPE_CHECKING:
    from typing import Any

    ReplyCallback = Callable[[dict[str, Any]], None]


class Conn:
    def __init__(self, loop: Loop, sock: socket.socket, on_frame: Callable[[int, int, bytes], None],
                 name: str, on_close: Callable[[], None] | None = None) -> None:
        self.loop, self.sock, self.on_frame, self.name = loop, sock, on_frame, name
        self.on_close = on_close or (lambda: None)
        sock.setblocking(False)
        self.fd = sock.fileno()
        self.wire = Connection(name)
        self.out = bytearray()
        self.timers: dict[int, int] = {}
        self.writing = False
        loop.add_reader(self.fd, self._readable)

    @property
    def closed(self) -> bool:
        return self.wire.closed

    def feed(self, data: bytes) -> None:
        """Bytes read before this object existed (e.g. by the set-up half of the shim)."""
        if data:
            self._received(data)

    def _readable(self) -> None:
        try:
            data = self.sock.recv(1 << 16)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self.close()
            return
        self._received(data)

    def _received(self, data: bytes) -> None:
        try:
            events = self.wire.receive(data)
        except WireError:
            self.close()
            return
        for ev in events:
            if isinstance(ev, Reply):
                self._answer(ev)
            else:
                self.on_frame(ev.kind, ev.ident, ev.payload)

    def _answer(self, reply: Reply) -> None:
        self.loop.cancel(self.timers.pop(reply.ident, None))
        reply.token(reply.body)

    def send(self, data: bytes) -> None:
        if self.closed or not data:
            return
        self.out += data
        self._flush()

    def _flush(self) -> None:
        while self.out:
            try:
                n = self.sock.send(self.out[: 1 << 16])
            except BlockingIOError:
                break
            except OSError as e:
                if e.errno in (errno.EPIPE, errno.ECONNRESET):
                    self.close()
                    return
                raise
            del self.out[:n]
        if self.out and not self.writing:
            self.loop.add_writer(self.fd, self._flush)
            self.writing = True
        elif not self.out and self.writing:
            self.loop.remove_writer(self.fd)
            self.writing = False

    def request(self, body: dict[str, Any], cb: ReplyCallback, timeout: float | None = 30) -> None:
        """cb gets the reply; a timeout or a closed connection becomes {"ok": False, "error": ...}."""
        try:
            ident, data = self.wire.request(body, cb)
        except ConnectionClosed as e:
            cb({"ok": False, "error": str(e)})
            return
        if timeout:
            self.timers[ident] = self.loop.call_later(timeout, lambda: self._expire(ident, timeout))
        self.send(data)

    def _expire(self, ident: int, timeout: float) -> None:
        self.timers.pop(ident, None)
        failed = self.wire.expire(ident, timeout)
        if failed is not None:
            failed.token(failed.body)

    def respond(self, ident: int, body: dict[str, Any]) -> None:
        self.send(self.wire.reply(ident, body))

    def close(self) -> None:
        if self.closed:
            return
        failed = self.wire.close()
        self.loop.remove_reader(self.fd)
        self.loop.remove_writer(self.fd)
        with contextlib.suppress(OSError):
            self.sock.close()
        for reply in failed:
            self._answer(reply)
        self.on_close()
