"""A framed connection (runtime.agent.protocol) on the resident shim's loop: requests with callbacks for their
replies, everything else to on_frame. The agent's channel and every control or exec-shim client use it."""

from __future__ import annotations

import contextlib
import errno
import itertools
import json
import socket
from collections.abc import Callable

from runtime.agent import protocol
from runtime.runvm.shim.loop import Loop

TYPE_CHECKING = False  # not typing's: importing typing costs every resident shim ~0.7 MB
if TYPE_CHECKING:
    from typing import Any

    Reply = Callable[[dict[str, Any]], None]


class Conn:
    def __init__(self, loop: Loop, sock: socket.socket, on_frame: Callable[[int, int, bytes], None],
                 name: str, on_close: Callable[[], None] | None = None) -> None:
        self.loop, self.sock, self.on_frame, self.name = loop, sock, on_frame, name
        self.on_close = on_close or (lambda: None)
        sock.setblocking(False)
        self.fd = sock.fileno()
        self.decoder = protocol.Decoder()
        self.out = bytearray()
        self.pending: dict[int, tuple[Reply, int | None]] = {}
        self.ids = itertools.count(1)
        self.closed = False
        self.writing = False
        loop.add_reader(self.fd, self._readable)

    def feed(self, data: bytes) -> None:
        """Bytes read before this object existed (e.g. by the set-up half of the shim)."""
        if data:
            self._frames(data)

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
        self._frames(data)

    def _frames(self, data: bytes) -> None:
        try:
            frames = self.decoder.feed(data)
        except ValueError:
            self.close()
            return
        for kind, ident, payload in frames:
            if kind == protocol.RESPONSE and ident in self.pending:
                cb, timer = self.pending.pop(ident)
                self.loop.cancel(timer)
                cb(json.loads(payload))
            else:
                self.on_frame(kind, ident, payload)

    def send(self, data: bytes) -> None:
        if self.closed:
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

    def request(self, body: dict[str, Any], cb: Reply, timeout: float | None = 30) -> None:
        """cb gets the reply; a timeout or a closed connection becomes {"ok": False, "error": ...}."""
        if self.closed:
            cb({"ok": False, "error": f"{self.name} closed"})
            return
        ident = next(self.ids)
        timer = None
        if timeout:
            def expire() -> None:
                if ident in self.pending:
                    self.pending.pop(ident)[0]({"ok": False,
                                                "error": f"{self.name}: no answer to {body.get('op')} in {timeout}s"})
            timer = self.loop.call_later(timeout, expire)
        self.pending[ident] = (cb, timer)
        self.send(protocol.message(protocol.REQUEST, ident, body))

    def respond(self, ident: int, body: dict[str, Any]) -> None:
        self.send(protocol.message(protocol.RESPONSE, ident, body))

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.loop.remove_reader(self.fd)
        self.loop.remove_writer(self.fd)
        with contextlib.suppress(OSError):
            self.sock.close()
        for cb, timer in list(self.pending.values()):
            self.loop.cancel(timer)
            cb({"ok": False, "error": f"{self.name} closed"})
        self.pending.clear()
        self.on_close()
