"""The host's asyncio and blocking adapters of runtime.wire: Link's replies, failures and timeouts, the bytes a
cancelled Link leaves for the next reader of the stream (the pool keeper's hand-over), and control's one-shot
request."""

from __future__ import annotations

import asyncio
import socket
import threading
from pathlib import Path

import pytest

from runtime.runvm.errors import RunvmError
from runtime.runvm.shim import control
from runtime.runvm.shim.link import Link
from runtime.wire import frames
from runtime.wire.connection import Connection, Frame


async def _pair() -> tuple[Link, socket.socket, list[tuple[int, int, bytes]]]:
    ours, theirs = socket.socketpair()
    theirs.setblocking(False)
    reader, writer = await asyncio.open_connection(sock=ours)
    seen: list[tuple[int, int, bytes]] = []
    return Link(reader, writer, lambda *f: seen.append(f), name="guest agent"), theirs, seen


async def _serve_one(peer: socket.socket, body: dict) -> None:
    """Answer the first request that arrives with body."""
    loop = asyncio.get_running_loop()
    wire = Connection()
    while True:
        for ev in wire.receive(await loop.sock_recv(peer, 1 << 16)):
            if isinstance(ev, Frame) and ev.kind == frames.REQUEST:
                await loop.sock_sendall(peer, frames.message(frames.EVENT, 0, {"event": "first"})
                                        + wire.reply(ev.ident, body))
                return


def test_link_replies_failures_and_timeouts() -> None:
    async def main() -> None:
        link, peer, seen = await _pair()
        serving = asyncio.get_running_loop().create_task(_serve_one(peer, {"ok": True, "pid": 7}))
        assert await link.request({"op": "create"}) == {"ok": True, "pid": 7}
        await serving
        assert seen == [(frames.EVENT, 0, b'{"event":"first"}')]  # other frames go to on_frame
        serving = asyncio.get_running_loop().create_task(_serve_one(peer, {"ok": False, "error": "no such image"}))
        with pytest.raises(RunvmError, match=r"^no such image$"):
            await link.request({"op": "create"})
        await serving
        with pytest.raises(RunvmError, match=r"^guest agent: no answer to ping in 0\.05s$"):
            await link.request({"op": "ping"}, timeout=0.05)
        assert link.wire.pending == {}
        pending = asyncio.get_running_loop().create_task(link.request({"op": "warm"}))
        await asyncio.sleep(0.05)
        peer.close()
        with pytest.raises(RunvmError, match=r"^guest agent closed$"):
            await pending
        await link.closed
        with pytest.raises(RunvmError, match=r"^guest agent closed$"):
            await link.request({"op": "ping"})  # at once, not after a timeout
        link.close()

    asyncio.run(main())


def test_a_cancelled_link_leaves_its_partial_frame_for_the_next_reader() -> None:
    async def main() -> None:
        ours, peer = socket.socketpair()
        reader, writer = await asyncio.open_connection(sock=ours)
        seen: list[tuple[int, int, bytes]] = []
        link = Link(reader, writer, lambda *f: seen.append(f), name="guest agent")
        whole = frames.message(frames.EVENT, 0, {"event": "ready"})
        peer.send(frames.frame(frames.DATA, 4, b"before") + whole[:7])
        await asyncio.sleep(0.05)
        assert seen == [(frames.DATA, 4, b"before")]
        assert link.unread() == whole[:7]
        writer.transport.pause_reading()  # type: ignore[attr-defined]
        link.task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await link.task
        left = bytes(reader._buffer)  # type: ignore[attr-defined]  # what the keeper hands over
        assert left == whole[:7]
        peer.send(whole[7:])  # stays in the socket for the next reader
        await asyncio.sleep(0.05)
        next_reader = frames.Decoder()
        assert next_reader.feed(left) == []
        assert next_reader.feed(ours.recv(100)) == [(frames.EVENT, 0, b'{"event":"ready"}')]
        link.close()
        peer.close()

    asyncio.run(main())


def test_control_sends_one_request_and_returns_its_reply(tmp_path: Path) -> None:
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(tmp_path / "shim.sock"))
    server.listen(1)

    def shim(reply: dict) -> None:
        conn, _ = server.accept()
        wire = Connection()
        with conn:
            while True:
                events = wire.receive(conn.recv(1 << 16))
                if events:
                    [req] = events
                    assert isinstance(req, Frame) and req.body() == {"op": "state"}
                    conn.sendall(frames.frame(frames.DATA, 9, b"noise") + wire.reply(req.ident, reply))
                    return

    for reply in ({"ok": True, "status": "running"}, {"ok": False, "error": "container is not running"}):
        t = threading.Thread(target=shim, args=(reply,))
        t.start()
        try:
            if reply["ok"]:
                assert control.request(tmp_path, {"op": "state"}, timeout=5) == reply
            else:
                with pytest.raises(RunvmError, match=r"^container is not running$"):
                    control.request(tmp_path, {"op": "state"}, timeout=5)
        finally:
            t.join()
    server.close()
    with pytest.raises(RunvmError, match="container not running"):
        control.request(tmp_path, {"op": "state"})
