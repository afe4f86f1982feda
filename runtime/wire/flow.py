"""Flow control of one stream: the credit window, for its sender and its receiver, without I/O.

A sender starts with WINDOW bytes of credit and spends it on DATA; the receiver grants it back (CREDIT) only for
bytes it delivered to their destination (or dropped, when nobody reads any more). So a stalled reader never
blocks the other streams or the control messages, and neither side holds more than a window of a stream.
"""

from __future__ import annotations

from runtime.wire import frames
from runtime.wire.frames import CHUNK, DATA, EOF, WINDOW


class Window:
    """The sending side: how much the sender may still put in flight, and the frames that spend it."""

    __slots__ = ("credit", "done", "stream")

    def __init__(self, stream: int, credit: int = WINDOW) -> None:
        self.stream = stream
        self.credit = credit
        self.done = False
        """EOF sent: nothing more on this stream."""

    @property
    def open(self) -> bool:
        """Whether the sender may read (and send) more now."""
        return not self.done and self.credit > 0

    def allowance(self, chunk: int = CHUNK) -> int:
        """How many bytes to read for the next DATA frame: 0 while the window is shut."""
        return min(chunk, self.credit) if self.open else 0

    def data(self, chunk: bytes) -> bytes:
        """The DATA frame for chunk, its length spent. Past the credit is allowed (the last bytes of a pipe
        that will not be read again): the credit goes negative and the window stays shut until granted."""
        self.credit -= len(chunk)
        return frames.frame(DATA, self.stream, chunk)

    def eof(self) -> bytes:
        """The EOF frame, once (b"" after)."""
        if self.done:
            return b""
        self.done = True
        return frames.frame(EOF, self.stream)

    def grant(self, amount: int) -> bool:
        """The receiver's CREDIT; True when it opened a shut window (the sender should resume)."""
        was_shut = self.credit <= 0
        self.credit += amount
        return was_shut and self.open

    def grant_frame(self, payload: bytes) -> bool:
        """grant() with a CREDIT frame's payload."""
        return self.grant(frames.credit_amount(payload))


class Backlog:
    """The receiving side: bytes that arrived and are not delivered yet, and the credit owed for those that
    were. Credit goes back for exactly what was delivered or dropped, so the sender never has more than a
    window outstanding."""

    __slots__ = ("closed", "eof", "owed", "pending", "stream")

    def __init__(self, stream: int) -> None:
        self.stream = stream
        self.pending = bytearray()
        self.eof = False
        """The sender said EOF."""
        self.closed = False
        """The destination is gone: whatever arrives is dropped (and credited at once)."""
        self.owed = 0

    def data(self, payload: bytes) -> None:
        if self.closed:
            self.owed += len(payload)
        else:
            self.pending += payload

    def end(self) -> None:
        self.eof = True

    def chunk(self, size: int = CHUNK) -> bytes:
        """The next bytes to deliver (at most size)."""
        return bytes(self.pending[:size])

    def delivered(self, n: int) -> None:
        """n bytes of chunk() reached the destination."""
        del self.pending[:n]
        self.owed += n

    def drop(self) -> None:
        """The destination is gone: drop what waits, credit it, and drop what comes."""
        self.owed += len(self.pending)
        self.pending.clear()
        self.closed = True

    @property
    def finished(self) -> bool:
        """EOF came and everything before it was delivered (or dropped)."""
        return self.eof and not self.pending

    def credit(self) -> bytes:
        """The CREDIT frame for what was delivered or dropped since the last call (b"" when nothing was)."""
        owed, self.owed = self.owed, 0
        return frames.credit(self.stream, owed) if owed else b""
