"""Asking Docker's embedded DNS server on behalf of the guest: from the container's netns (where the shim
lives and Docker's DNAT rules send 127.0.0.11:53 to the resolver), one UDP query, one answer."""

from __future__ import annotations

import asyncio


class _Once(asyncio.DatagramProtocol):
    def __init__(self, query: bytes) -> None:
        self.query = query
        self.answer: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.sendto(self.query)  # type: ignore[attr-defined]

    def datagram_received(self, data: bytes, addr: object) -> None:
        if not self.answer.done():
            self.answer.set_result(data)

    def error_received(self, exc: Exception) -> None:
        if not self.answer.done():
            self.answer.set_exception(exc)


async def ask(query: bytes, server: str | None, timeout: float = 5.0) -> bytes:
    if not server:
        raise OSError("no embedded DNS server for this container")
    loop = asyncio.get_running_loop()
    transport, proto = await loop.create_datagram_endpoint(lambda: _Once(query), remote_addr=(server, 53))
    try:
        return await asyncio.wait_for(proto.answer, timeout)
    finally:
        transport.close()
