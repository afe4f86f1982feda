"""The resident shim's small event loop and framed connections, over real socketpairs and pipes."""

from __future__ import annotations

import os
import signal
import socket

from runtime.runvm.shim.conn import Conn
from runtime.runvm.shim.loop import Loop
from runtime.runvm.shim.relay import FdToStream, StreamToFd
from runtime.wire import frames as protocol


def test_timers_run_in_order_and_cancelled_ones_do_not() -> None:
    loop = Loop()
    seen: list[str] = []
    loop.call_later(0.02, lambda: seen.append("b"))
    loop.call_later(0.01, lambda: seen.append("a"))
    h = loop.call_later(0.015, lambda: seen.append("never"))
    loop.cancel(h)
    loop.call_later(0.03, loop.stop)
    loop.run()
    assert seen == ["a", "b"]


def test_requests_get_their_replies_and_a_timeout_is_an_error() -> None:
    loop = Loop()
    a, b = socket.socketpair()
    answers: list[dict] = []

    def server_frame(kind: int, ident: int, payload: bytes) -> None:
        if kind == protocol.REQUEST and b"slow" not in payload:
            server.respond(ident, {"ok": True, "echo": payload.decode()})

    server = Conn(loop, b, server_frame, "server")
    client = Conn(loop, a, lambda *f: None, "client")
    client.request({"op": "ping"}, answers.append)
    client.request({"op": "slow"}, answers.append, timeout=0.05)
    loop.call_later(0.2, loop.stop)
    loop.run()
    assert answers[0]["ok"] and '"ping"' in answers[0]["echo"]
    assert answers[1] == {"ok": False, "error": "client: no answer to slow in 0.05s"}


def test_a_closed_peer_fails_pending_requests() -> None:
    loop = Loop()
    a, b = socket.socketpair()
    answers: list[dict] = []
    closed: list[bool] = []
    client = Conn(loop, a, lambda *f: None, "agent", on_close=lambda: closed.append(True))
    client.request({"op": "ping"}, answers.append)
    b.close()
    loop.call_later(0.1, loop.stop)
    loop.run()
    assert answers == [{"ok": False, "error": "agent closed"}] and closed == [True]


def test_signals_reach_their_handler_through_the_wakeup_fd() -> None:
    loop = Loop()
    got: list[int] = []
    loop.add_signal_handler(signal.SIGUSR2, lambda s: (got.append(s), loop.stop()))
    loop.call_soon(lambda: os.kill(os.getpid(), signal.SIGUSR2))
    loop.call_later(2, loop.stop)
    loop.run()
    signal.signal(signal.SIGUSR2, signal.SIG_DFL)
    signal.set_wakeup_fd(-1)
    assert got == [signal.SIGUSR2]


def test_relays_move_a_megabyte_within_the_credit_window() -> None:
    """fd -> frames -> fd, with credit returned only for bytes written: nothing lost, nothing buffered beyond
    the window."""
    loop = Loop()
    src_r, src_w = os.pipe()
    dst_r, dst_w = os.pipe()
    payload = os.urandom(1 << 20)
    received = bytearray()
    max_in_flight = [0]

    def to_writer(frame: bytes) -> None:
        for kind, _ident, data in protocol.Decoder().feed(frame):
            if kind == protocol.DATA:
                max_in_flight[0] = max(max_in_flight[0], protocol.WINDOW - reader.credit)
                writer.data(data)
            elif kind == protocol.EOF:
                writer.end()

    def to_reader(frame: bytes) -> None:
        for kind, _ident, data in protocol.Decoder().feed(frame):
            if kind == protocol.CREDIT:
                reader.grant(protocol.CREDIT_FMT.unpack(data)[0])

    reader = FdToStream(loop, src_r, 5, to_writer)
    writer = StreamToFd(loop, dst_w, 5, to_reader)
    os.set_blocking(dst_r, False)

    def drain() -> None:
        try:
            chunk = os.read(dst_r, 1 << 16)
        except BlockingIOError:
            return
        if chunk:
            received.extend(chunk)
        else:
            loop.remove_reader(dst_r)
            loop.stop()

    loop.add_reader(dst_r, drain)
    os.set_blocking(src_w, False)
    view = memoryview(payload)

    def feed() -> None:
        nonlocal view
        try:
            n = os.write(src_w, view[: 1 << 16])
        except BlockingIOError:
            return
        view = view[n:]
        if not view:
            loop.remove_writer(src_w)
            os.close(src_w)

    loop.add_writer(src_w, feed)
    reader.start()
    loop.call_later(10, loop.stop)
    loop.run()
    assert bytes(received) == payload
    assert writer.flushed and max_in_flight[0] <= protocol.WINDOW
