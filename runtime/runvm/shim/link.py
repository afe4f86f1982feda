"""A framed connection (runtime.agent.protocol) over an asyncio stream: requests with futures, everything
else handed to a callback. Used for the agent channel, the control socket and exec-shims."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections.abc import Callable
from typing import Any

from runtime.agent import protocol
from runtime.runvm.errors import RunvmError

FrameCallback = Callable[[int, int, bytes], None]


class Link:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 on_frame: FrameCallback | None = None, name: str = "link") -> None:
        self.reader, self.writer, self.name = reader, writer, name
        self.on_frame = on_frame or (lambda k, i, p: None)
        self.pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.ids = itertools.count(1)
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        decoder = protocol.Decoder()
        try:
            while True:
                data = await self.reader.read(1 << 16)
                if not data:
                    break
                for kind, ident, payload in decoder.feed(data):
                    if kind == protocol.RESPONSE and ident in self.pending:
                        fut = self.pending.pop(ident)
                        if not fut.done():
                            fut.set_result(json.loads(payload))
                    else:
                        self.on_frame(kind, ident, payload)
        except (ConnectionError, ValueError, OSError):
            pass
        finally:
            for fut in self.pending.values():
                if not fut.done():
                    fut.set_exception(RunvmError(f"{self.name} closed"))
            self.pending.clear()
            if not self.closed.done():
                self.closed.set_result(None)

    def send(self, data: bytes) -> None:
        if not self.writer.is_closing():
            self.writer.write(data)

    async def drain(self) -> None:
        with contextlib.suppress(ConnectionError):
            await self.writer.drain()

    async def request(self, body: dict[str, Any], timeout: float | None = 30) -> dict[str, Any]:
        """Send a request and wait for its response; a failure reply raises with the other side's words."""
        ident = next(self.ids)
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.pending[ident] = fut
        self.send(protocol.message(protocol.REQUEST, ident, body))
        try:
            reply = await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            self.pending.pop(ident, None)
            raise RunvmError(f"{self.name}: no answer to {body.get('op')} within {timeout}s") from None
        if not reply.get("ok"):
            raise RunvmError(reply.get("error") or f"{body.get('op')} failed")
        return reply

    def respond(self, ident: int, body: dict[str, Any]) -> None:
        self.send(protocol.message(protocol.RESPONSE, ident, body))

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()
