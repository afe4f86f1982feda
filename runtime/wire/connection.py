"""One framed connection's bookkeeping as a state machine, without I/O: request ids, the requests still waiting
for an answer, their replies, the failures a timeout or a close turns them into.

    conn = Connection("guest agent")
    ident, data = conn.request({"op": "ping"}, token)  # send data; token comes back with the reply
    for event in conn.receive(received):                # bytes in, in any chunks
        Reply: the answer to one of our requests; Frame: anything else (requests, events, stream data)
    conn.expire(ident, 30)                              # the adapter's timer fired: a failure Reply, or None
    conn.close()                                        # a failure Reply for every request still waiting
    conn.reset()                                        # the same, for a peer replaced by a new one (agent)

Either side may send requests; each side numbers its own, and a RESPONSE carries the id of the request it
answers. A response to no pending request (it timed out already) is dropped.
"""

from __future__ import annotations

import itertools

from runtime.wire import frames
from runtime.wire.frames import REQUEST, RESPONSE, ConnectionClosed

TYPE_CHECKING = False  # not typing's: importing typing costs every resident shim ~0.7 MB
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any


class Frame:
    """A frame the connection does not consume itself: a request from the peer, an event, stream data."""

    __slots__ = ("ident", "kind", "payload")

    def __init__(self, kind: int, ident: int, payload: bytes) -> None:
        self.kind, self.ident, self.payload = kind, ident, payload

    def __iter__(self) -> Iterator[Any]:
        return iter((self.kind, self.ident, self.payload))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Frame) and tuple(self) == tuple(other)

    def __hash__(self) -> int:
        return hash(tuple(self))

    def __repr__(self) -> str:
        return f"Frame({self.kind}, {self.ident}, {self.payload[:40]!r})"

    def body(self) -> dict[str, Any]:
        """A JSON frame's body (REQUEST, EVENT)."""
        return frames.decode_json(self.payload)


class Reply:
    """The answer to one of our requests: the peer's response, or the failure a timeout or a close made of it.
    token is what the request was given (a callback, a future)."""

    __slots__ = ("body", "ident", "op", "token")

    def __init__(self, ident: int, op: str, body: dict[str, Any], token: Any = None) -> None:
        self.ident, self.op, self.body, self.token = ident, op, body, token

    @property
    def ok(self) -> bool:
        return bool(self.body.get("ok"))

    @property
    def error(self) -> str:
        """What went wrong, in the other side's words when it said."""
        return str(self.body.get("error") or f"{self.op} failed")

    def __repr__(self) -> str:
        return f"Reply({self.ident}, {self.op!r}, {self.body!r})"


class Connection:
    def __init__(self, name: str = "peer") -> None:
        self.name = name
        """Who is on the other end, for the failures' messages ("guest agent closed")."""
        self.closed = False
        self.pending: dict[int, tuple[str, Any]] = {}
        """Our requests still waiting for an answer: id -> (op, token). Read-only for adapters."""
        self.session = 0
        """How many times the peer's end was replaced (reset)."""
        self._ids = itertools.count(1)
        self._decoder = frames.Decoder()

    # ---- out --------------------------------------------------------------------------------------------
    def request(self, body: dict[str, Any], token: Any = None) -> tuple[int, bytes]:
        """(id, bytes to send) of a new request; its Reply carries token. ConnectionClosed once closed."""
        if self.closed:
            raise ConnectionClosed(f"{self.name} closed")
        ident = next(self._ids)
        data = frames.message(REQUEST, ident, body)
        self.pending[ident] = (str(body.get("op", "")), token)
        return ident, data

    def reply(self, ident: int, body: dict[str, Any], session: int | None = None) -> bytes:
        """The response to the peer's request ident. Nothing once closed (nobody would read it), nor when the
        request came in an earlier session than this one: the new peer has requests of its own by that id."""
        if self.closed or (session is not None and session != self.session):
            return b""
        return frames.message(RESPONSE, ident, body)

    def event(self, body: dict[str, Any]) -> bytes:
        return b"" if self.closed else frames.message(frames.EVENT, 0, body)

    # ---- in ---------------------------------------------------------------------------------------------
    def receive(self, data: bytes) -> list[Frame | Reply]:
        """The events in these bytes, in order. WireError when the stream is corrupt: close() then."""
        if self.closed:
            return []
        events: list[Frame | Reply] = []
        for kind, ident, payload in self._decoder.feed(data):
            if kind == RESPONSE:
                waiting = self.pending.pop(ident, None)
                if waiting is not None:
                    events.append(Reply(ident, waiting[0], frames.decode_json(payload), waiting[1]))
            else:
                events.append(Frame(kind, ident, payload))
        return events

    def unconsumed(self) -> bytes:
        """Bytes of a frame not complete yet (a hand-over of the byte stream must pass them on)."""
        return self._decoder.unconsumed()

    # ---- failures ---------------------------------------------------------------------------------------
    def expire(self, ident: int, after: float) -> Reply | None:
        """The request has waited `after` seconds: its failure Reply, or None when it was answered already."""
        waiting = self.pending.pop(ident, None)
        if waiting is None:
            return None
        op, token = waiting
        return Reply(ident, op, {"ok": False, "error": f"{self.name}: no answer to {op} in {after}s"}, token)

    def forget(self, ident: int) -> None:
        """Nobody waits for this request any more (its waiter was cancelled): drop its answer when it comes."""
        self.pending.pop(ident, None)

    def close(self) -> list[Reply]:
        """No more bytes either way: a failure Reply for each request still waiting, in the order they were
        sent (empty when closed already)."""
        if self.closed:
            return []
        self.closed = True
        return self._fail_pending()

    def reset(self) -> list[Reply]:
        """The peer's end was replaced by a new one (each VM restored from a template gets a new host end):
        the old peer's pending requests fail, its partial frame is dropped, a new session begins. Request ids go
        on counting, so a late answer from the old peer is never taken for the new one's."""
        self._decoder = frames.Decoder()
        self.session += 1
        return self._fail_pending()

    def _fail_pending(self) -> list[Reply]:
        failed = [Reply(ident, op, {"ok": False, "error": f"{self.name} closed"}, token)
                  for ident, (op, token) in sorted(self.pending.items())]
        self.pending.clear()
        return failed
