"""The agent's channel streams on the host: a process's output never has more than the host's credit in flight
(and gets through whole once credit comes), a checkpoint's flush may go past it, stdin credit comes back only for
bytes the pipe took, and a gone reader still keeps the host's credit flowing."""

from __future__ import annotations

import asyncio
import fcntl
import os
import socket
from collections.abc import Awaitable, Callable

from runtime.agent.channel import Channel, InStream, OutStream
from runtime.wire import frames

F_SETPIPE_SZ = 1031


OUTS: dict[int, OutStream] = {}


def route(kind: int, ident: int, payload: bytes) -> None:
    """As the agent's on_frame does: credit to the stream it is for."""
    if kind == frames.CREDIT and ident in OUTS:
        OUTS[ident].grant(frames.credit_amount(payload))


def run(scenario: Callable[[Channel, socket.socket], Awaitable[None]]) -> None:
    ours, theirs = socket.socketpair()
    theirs.setblocking(False)
    OUTS.clear()

    async def main() -> None:
        await scenario(Channel(ours.fileno(), route, lambda: None), theirs)

    try:
        asyncio.run(main())
    finally:
        ours.close()
        theirs.close()


async def receive(sock: socket.socket, decoder: frames.Decoder, quiet: float = 0.2) -> list[tuple[int, int, bytes]]:
    """Every frame that arrives until nothing has for `quiet` seconds."""
    loop = asyncio.get_running_loop()
    got: list[tuple[int, int, bytes]] = []
    while True:
        try:
            data = await asyncio.wait_for(loop.sock_recv(sock, 1 << 16), quiet)
        except TimeoutError:
            return got
        got += decoder.feed(data)


def _data(got: list[tuple[int, int, bytes]], stream: int) -> bytes:
    return b"".join(p for k, i, p in got if k == frames.DATA and i == stream)


def test_output_stops_at_the_window_and_resumes_with_credit() -> None:
    async def scenario(chan: Channel, host: socket.socket) -> None:
        r, w = os.pipe()
        fcntl.fcntl(w, F_SETPIPE_SZ, 1 << 20)
        payload = os.urandom(frames.WINDOW + 100_000)
        os.write(w, payload)
        os.close(w)
        done: list[bool] = []
        out = OUTS[11] = OutStream(chan, 11, r, lambda: done.append(True))
        dec = frames.Decoder()
        first = await receive(host, dec)
        assert len(_data(first, 11)) == frames.WINDOW and not done and not out.reading
        host.send(frames.credit(11, 60_000))
        second = await receive(host, dec)
        assert len(_data(first + second, 11)) == frames.WINDOW + 60_000
        host.send(frames.credit(11, frames.WINDOW))
        rest = await receive(host, dec)
        assert _data(first + second + rest, 11) == payload
        assert rest[-1] == (frames.EOF, 11, b"") and done == [True]

    run(scenario)


def test_a_checkpoint_flush_goes_past_the_credit() -> None:
    async def scenario(chan: Channel, host: socket.socket) -> None:
        r, w = os.pipe()
        fcntl.fcntl(w, F_SETPIPE_SZ, 1 << 20)
        out = OutStream(chan, 11, r, lambda: None)
        out._pause()  # frozen writers: what the pipe holds goes now, whatever the credit
        out.window.credit = 10
        os.write(w, b"x" * 200_000)
        out.flush_buffered()
        got = await receive(host, frames.Decoder())
        assert len(_data(got, 11)) == 200_000 and out.window.credit == 10 - 200_000 and not out.reading
        out.grant(200_000)
        assert out.reading
        os.close(w)
        out.drain_and_finish()
        assert (frames.EOF, 11, b"") in await receive(host, frames.Decoder())

    run(scenario)


def test_stdin_credit_follows_what_the_pipe_took() -> None:
    async def scenario(chan: Channel, host: socket.socket) -> None:
        r, w = os.pipe()
        size = fcntl.fcntl(w, 1032)  # F_GETPIPE_SZ
        stdin = InStream(chan, 10, w, closable=True)
        stdin.data(b"a" * (size + 5000))
        got = await receive(host, frames.Decoder())
        assert [(k, i, frames.credit_amount(p)) for k, i, p in got] == [(frames.CREDIT, 10, size)]
        assert stdin.writing and len(stdin.backlog.pending) == 5000
        assert len(os.read(r, size)) == size
        stdin.end()
        got = await receive(host, frames.Decoder())
        assert sum(frames.credit_amount(p) for _k, _i, p in got) == 5000
        assert os.read(r, 10_000) == b"a" * 5000 and os.read(r, 1) == b""  # EOF closed it
        assert stdin.closed and not stdin.writing
        os.close(r)

    run(scenario)


def test_a_gone_reader_keeps_the_host_s_credit_flowing() -> None:
    async def scenario(chan: Channel, host: socket.socket) -> None:
        r, w = os.pipe()
        os.close(r)
        stdin = InStream(chan, 10, w, closable=False)
        stdin.data(b"lost")
        stdin.data(b"also lost")
        got = await receive(host, frames.Decoder())
        assert sum(frames.credit_amount(p) for _k, _i, p in got) == len(b"lost") + len(b"also lost")
        assert stdin.closed
        stdin.close()  # again: the fd is not closed twice

    run(scenario)


def test_a_corrupt_stream_resets_the_channel() -> None:
    resets: list[bool] = []
    ours, theirs = socket.socketpair()

    async def main() -> None:
        chan = Channel(ours.fileno(), lambda *f: None, lambda: resets.append(True))
        asking = asyncio.get_running_loop().create_task(chan.ask({"op": "dns"}))
        await asyncio.sleep(0.05)
        theirs.send(frames.HEADER.pack(frames.DATA, 0, 1, frames.MAX_PAYLOAD + 1))
        assert await asyncio.wait_for(asking, 5) == {"ok": False, "error": "host closed"}
        assert resets == [True] and chan.session == 1 and not chan.wire.closed

    try:
        asyncio.run(main())
    finally:
        ours.close()
        theirs.close()
