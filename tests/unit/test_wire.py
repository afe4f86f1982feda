"""runtime.wire, the frames, connection bookkeeping and credit windows host and guest share: any chunking of the
byte stream, replies matched to their requests (or failed by a timeout, a close, a reset), flow control that
never lets a sender exceed its window."""

from __future__ import annotations

import json
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runtime.wire import frames
from runtime.wire.connection import Connection, Frame, Reply
from runtime.wire.flow import Backlog, Window
from runtime.wire.frames import ConnectionClosed, WireError

FEW = settings(max_examples=60, deadline=None)

frame_tuples = st.tuples(st.sampled_from(frames.KINDS), st.integers(0, 2**32 - 1), st.binary(max_size=200))


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


@FEW
@given(st.lists(frame_tuples, max_size=12), st.lists(st.integers(0, 10_000), max_size=20))
def test_frames_survive_any_split_of_the_stream(sent: list[tuple[int, int, bytes]], cuts: list[int]) -> None:
    wire = b"".join(frames.frame(k, i, p) for k, i, p in sent)
    dec = frames.Decoder()
    got = []
    for piece in _split(wire, cuts):
        got += dec.feed(piece)
    assert got == sent
    assert dec.unconsumed() == b""


def test_a_partial_frame_waits_and_can_be_handed_over() -> None:
    data = frames.frame(frames.DATA, 7, b"hello") + frames.frame(frames.EOF, 7)
    dec = frames.Decoder()
    assert dec.feed(data[:12]) == []
    assert dec.unconsumed() == data[:12]
    assert dec.feed(data[12:]) == [(frames.DATA, 7, b"hello"), (frames.EOF, 7, b"")]


def test_an_oversized_frame_means_the_stream_is_out_of_sync() -> None:
    with pytest.raises(WireError, match="out of sync"):
        frames.Decoder().feed(frames.HEADER.pack(frames.DATA, 0, 1, frames.MAX_PAYLOAD + 1))
    with pytest.raises(ValueError, match="exceeds"):
        frames.frame(frames.DATA, 1, b"x" * (frames.MAX_PAYLOAD + 1))


def test_bad_messages_and_credits_are_wire_errors() -> None:
    for payload in (b"not json", b"[1, 2]", b"\xff\xfe"):
        with pytest.raises(WireError):
            frames.decode_json(payload)
    with pytest.raises(WireError):
        frames.credit_amount(b"\0\0")
    assert frames.credit_amount(frames.CREDIT_FMT.pack(99)) == 99


@pytest.mark.parametrize(("status", "code"), [({"code": 0}, 0), ({"code": 3}, 3), ({"signal": 9}, 137), ({}, 255)])
def test_exit_codes_as_docker_reports_them(status: dict, code: int) -> None:
    assert frames.exit_code(status) == code


# ---- the connection ------------------------------------------------------------------------------------------
def _answer(server: Connection, data: bytes, body: dict | None = None) -> bytes:
    """The server side: reply to every request in data."""
    out = b""
    for ev in server.receive(data):
        assert isinstance(ev, Frame) and ev.kind == frames.REQUEST
        out += server.reply(ev.ident, body or {"ok": True, "echo": ev.body()})
    return out


def test_a_request_gets_its_reply_with_its_token() -> None:
    client, server = Connection("agent"), Connection("host")
    ident, data = client.request({"op": "ping", "n": 1}, token="cb")
    assert ident == 1 and client.pending == {1: ("ping", "cb")}
    [reply] = client.receive(_answer(server, data))
    assert isinstance(reply, Reply)
    assert (reply.ident, reply.op, reply.token, reply.ok) == (1, "ping", "cb", True)
    assert reply.body["echo"] == {"op": "ping", "n": 1}
    assert client.pending == {}


def test_frames_that_are_not_replies_pass_through_in_order() -> None:
    conn = Connection()
    ident, _ = conn.request({"op": "x"})
    data = (frames.message(frames.EVENT, 0, {"event": "exit"}) + frames.frame(frames.DATA, 5, b"out")
            + frames.message(frames.RESPONSE, ident, {"ok": False, "error": "no such thing"})
            + frames.message(frames.REQUEST, 1, {"op": "dns"}))
    events = conn.receive(data)
    assert [type(e).__name__ for e in events] == ["Frame", "Frame", "Reply", "Frame"]
    event, chunk = events[0], events[1]
    assert isinstance(event, Frame) and isinstance(chunk, Frame)
    assert tuple(chunk) == (frames.DATA, 5, b"out") and event.body() == {"event": "exit"}
    reply = events[2]
    assert isinstance(reply, Reply) and not reply.ok and reply.error == "no such thing"


def test_a_reply_without_error_text_names_the_op() -> None:
    conn = Connection()
    ident, _ = conn.request({"op": "pause"})
    [reply] = conn.receive(frames.message(frames.RESPONSE, ident, {"ok": False}))
    assert isinstance(reply, Reply) and reply.error == "pause failed"


def test_a_timeout_fails_the_request_and_its_late_answer_is_dropped() -> None:
    conn = Connection("client")
    ident, _ = conn.request({"op": "slow"}, token=42)
    expired = conn.expire(ident, 0.05)
    assert expired is not None and expired.token == 42
    assert expired.body == {"ok": False, "error": "client: no answer to slow in 0.05s"}
    assert conn.expire(ident, 0.05) is None
    assert conn.receive(frames.message(frames.RESPONSE, ident, {"ok": True})) == []


def test_a_corrupt_reply_is_a_wire_error() -> None:
    conn = Connection()
    ident, _ = conn.request({"op": "x"})
    with pytest.raises(WireError):
        conn.receive(frames.frame(frames.RESPONSE, ident, b"{oops"))


def test_close_fails_every_pending_request_once_in_order() -> None:
    conn = Connection("guest agent")
    for op in ("a", "b", "c"):
        conn.request({"op": op}, token=op)
    conn.forget(2)
    failed = conn.close()
    assert [(r.ident, r.token, r.body) for r in failed] == [
        (1, "a", {"ok": False, "error": "guest agent closed"}), (3, "c", {"ok": False, "error": "guest agent closed"})]
    assert conn.close() == [] and conn.closed
    with pytest.raises(ConnectionClosed, match="guest agent closed"):
        conn.request({"op": "late"})
    assert conn.reply(1, {"ok": True}) == b"" and conn.event({"event": "x"}) == b""
    assert conn.receive(frames.message(frames.EVENT, 0, {})) == []


def test_reset_starts_a_new_session() -> None:
    conn = Connection("host")
    old, _ = conn.request({"op": "dns"}, token="t")
    conn.receive(frames.frame(frames.DATA, 4, b"partial")[:10])
    session = conn.session
    [failed] = conn.reset()
    assert failed.token == "t" and not failed.ok and not conn.closed
    assert conn.unconsumed() == b""  # the old peer's partial frame is gone
    new, _ = conn.request({"op": "dns"})
    assert new > old  # a late answer of the old peer cannot be taken for the new request's
    assert conn.reply(7, {"ok": True}, session) == b""  # computed for the old peer: not sent to the new one
    assert conn.reply(7, {"ok": True}, conn.session) != b""
    assert conn.reply(7, {"ok": True}) != b""


@FEW
@given(st.lists(st.tuples(st.booleans(), st.text(max_size=8)), min_size=1, max_size=15), st.randoms(),
       st.lists(st.integers(0, 5000), max_size=15))
def test_both_sides_asking_at_once_each_get_their_own_answers(
        asks: list[tuple[bool, str]], rnd: random.Random, cuts: list[int]) -> None:
    """Requests both ways over one stream pair, answered in any order and received in any chunks: every reply
    reaches the request it answers, whatever the ids the two sides picked."""
    a, b = Connection("a"), Connection("b")
    sides = {True: (a, b), False: (b, a)}
    sent: dict[tuple[bool, int], str] = {}
    to_peer: dict[bool, list[bytes]] = {True: [], False: []}
    for from_a, text in asks:
        me, _ = sides[from_a]
        ident, data = me.request({"op": "echo", "text": text}, token=text)
        sent[(from_a, ident)] = text
        to_peer[from_a].append(data)
    replies: dict[bool, list[bytes]] = {True: [], False: []}
    for from_a in (True, False):
        _, peer = sides[from_a]
        incoming = b"".join(to_peer[from_a])
        requests = [ev for piece in _split(incoming, cuts) for ev in peer.receive(piece)]
        rnd.shuffle(requests)
        for ev in requests:
            assert isinstance(ev, Frame)
            replies[from_a].append(peer.reply(ev.ident, {"ok": True, "text": json.loads(ev.payload)["text"]}))
    for from_a in (True, False):
        me, _ = sides[from_a]
        got = [ev for piece in _split(b"".join(replies[from_a]), cuts) for ev in me.receive(piece)]
        for reply in got:
            assert isinstance(reply, Reply)
            assert reply.body["text"] == reply.token == sent.pop((from_a, reply.ident))
        assert me.pending == {}
    assert sent == {}


# ---- flow control ---------------------------------------------------------------------------------------------
def test_a_window_shuts_at_zero_and_reopens_with_credit() -> None:
    w = Window(3, credit=10)
    assert w.open and w.allowance(64) == 10 and w.allowance(4) == 4
    assert frames.Decoder().feed(w.data(b"x" * 10)) == [(frames.DATA, 3, b"x" * 10)]
    assert not w.open and w.allowance() == 0
    assert w.grant(5) is True and w.allowance() == 5
    assert w.grant(5) is False  # open already: nothing to resume
    w.data(b"y" * 20)  # past the credit (the last bytes of a pipe): the window stays shut until granted
    assert w.credit == -10 and not w.open
    assert w.grant_frame(frames.CREDIT_FMT.pack(5)) is False and w.grant(6) is True
    assert frames.Decoder().feed(w.eof()) == [(frames.EOF, 3, b"")]
    assert w.eof() == b"" and w.done and not w.open and w.allowance() == 0


def test_a_backlog_credits_what_it_delivered_or_dropped() -> None:
    b = Backlog(9)
    assert b.credit() == b""
    b.data(b"abcdef")
    assert b.chunk(4) == b"abcd"
    b.delivered(4)
    assert frames.Decoder().feed(b.credit()) == [(frames.CREDIT, 9, frames.CREDIT_FMT.pack(4))]
    b.end()
    assert not b.finished
    b.drop()
    assert b.finished and b.closed
    b.data(b"late")  # nobody reads any more: dropped, credited at once
    assert b.pending == b"" and frames.credit_amount(frames.Decoder().feed(b.credit())[0][2]) == 2 + 4


@FEW
@given(st.integers(0, 800_000), st.lists(st.integers(512, 200_000), min_size=1, max_size=30),
       st.lists(st.integers(512, 300_000), min_size=1, max_size=30))
def test_a_stream_arrives_whole_and_never_beyond_the_window(size: int, reads: list[int], writes: list[int]) -> None:
    """A sender reading in any sizes, a receiver whose destination takes any amounts: every byte arrives in
    order, and what is in flight (sent, not yet credited back) never exceeds the window."""
    source = random.Random(size).randbytes(size)
    sender, receiver = Window(1), Backlog(1)
    to_receiver, to_sender = frames.Decoder(), frames.Decoder()
    offset, delivered, turn = 0, bytearray(), 0
    while len(delivered) < size or not sender.done:
        want = sender.allowance(reads[turn % len(reads)])
        if want and offset < size:
            chunk = source[offset:offset + want]
            offset += len(chunk)
            wire = sender.data(chunk)
        elif offset >= size and not sender.done:
            wire = sender.eof()
        else:
            wire = b""
        assert sender.credit >= 0  # in flight = WINDOW - credit: never more than the window
        for kind, _ident, payload in to_receiver.feed(wire):
            receiver.data(payload) if kind == frames.DATA else receiver.end()
        assert len(receiver.pending) <= frames.WINDOW
        take = min(len(receiver.pending), writes[turn % len(writes)])
        delivered += receiver.chunk(take)
        receiver.delivered(take)
        for _kind, _ident, payload in to_sender.feed(receiver.credit()):
            sender.grant_frame(payload)
        turn += 1
        assert turn < 5 * size // 512 + 10, "stalled"
    assert bytes(delivered) == source and receiver.finished and sender.credit == frames.WINDOW
