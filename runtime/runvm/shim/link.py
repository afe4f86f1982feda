"""runtime.wire's framed connection over an asyncio stream: requests awaited, everything else handed to a
callback. Used for the agent channel (set-up half of the vm-shim, pool keeper, template build), and by
exec-shims towards their vm-shim."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from runtime.runvm.errors import RunvmError
from runtime.wire.connection import Connection, Reply
from runtime.wire.frames import ConnectionClosed, WireError

FrameCallback = Callable[[int, int, bytes], None]


class Link:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 on_frame: FrameCallback | None = None, name: str = "link") -> None:
        self.reader, self.writer, self.name = reader, writer, name
        self.on_frame = on_frame or (lambda k, i, p: None)
        self.wire = Connection(name)
        loop = asyncio.get_running_loop()
        self.closed: asyncio.Future[None] = loop.create_future()
        self.task = loop.create_task(self._run())

    async def _run(self) -> None:
        try:
            while True:
                data = await self.reader.read(1 << 16)
                if not data:
                    break
                for ev in self.wire.receive(data):
                    if isinstance(ev, Reply):
                        if not ev.token.done():
                            ev.token.set_result(ev)
                    else:
                        self.on_frame(ev.kind, ev.ident, ev.payload)
        except (ConnectionError, WireError, OSError):
            pass
        except asyncio.CancelledError:
            self._put_back()
            raise
        finally:
            for failed in self.wire.close():
                if not failed.token.done():
                    failed.token.set_result(failed)
            if not self.closed.done():
                self.closed.set_result(None)

    def _put_back(self) -> None:
        """Cancelled to hand the stream over (the pool keeper does): a partial frame already read goes back in
        front of the reader's buffer, where the hand-over takes the unread bytes from."""
        partial = self.wire.unconsumed()
        buffer = getattr(self.reader, "_buffer", None)
        if partial and isinstance(buffer, bytearray):
            buffer[:0] = partial

    def unread(self) -> bytes:
        """Everything received and not yet decoded (a partial frame, then the reader's buffer): what a new
        reader of the same byte stream must start with. Pause the transport's reading first."""
        return self.wire.unconsumed() + bytes(getattr(self.reader, "_buffer", b""))

    def send(self, data: bytes) -> None:
        if data and not self.writer.is_closing():
            self.writer.write(data)

    async def drain(self) -> None:
        with contextlib.suppress(ConnectionError):
            await self.writer.drain()

    async def request(self, body: dict[str, Any], timeout: float | None = 30) -> dict[str, Any]:
        """Send a request and wait for its response; a failure reply raises with the other side's words."""
        fut: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        try:
            ident, data = self.wire.request(body, fut)
        except ConnectionClosed as e:
            raise RunvmError(str(e)) from None
        self.send(data)
        try:
            reply = await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            expired = self.wire.expire(ident, timeout or 0)
            raise RunvmError(expired.error if expired else f"{self.name} closed") from None
        except asyncio.CancelledError:
            self.wire.forget(ident)
            raise
        if not reply.ok:
            raise RunvmError(reply.error)
        return reply.body

    def respond(self, ident: int, body: dict[str, Any]) -> None:
        self.send(self.wire.reply(ident, body))

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()
