"""Frames: one byte stream carries requests and responses (JSON), events (JSON), and the stdio of every process
as DATA/EOF frames on numbered streams, each with a credit window (see flow).

Frame: kind (u8), flags (u8, always 0), stream or request id (u32), payload length (u32), payload.
"""

from __future__ import annotations

import json
import struct

TYPE_CHECKING = False  # not typing's: importing typing costs every resident shim ~0.7 MB
if TYPE_CHECKING:
    from typing import Any

HEADER = struct.Struct(">BBII")
MAX_PAYLOAD = 1 << 20

REQUEST = 1   # id = request id; payload: {"op": ..., ...}
RESPONSE = 2  # id = the request's id; payload: {"ok": bool, "error": str?, ...}
EVENT = 3     # id = 0; payload: {"event": "exit" | "oom" | "gone" | ..., ...}
DATA = 4      # id = stream id; payload: bytes
EOF = 5       # id = stream id; no payload
CREDIT = 6    # id = stream id; payload: u32, how many more bytes the receiver takes
KINDS = (REQUEST, RESPONSE, EVENT, DATA, EOF, CREDIT)

WINDOW = 256 * 1024
"""Credit every stream starts with; the receiver grants more as it delivers."""
CHUNK = 64 * 1024
"""The most a sender reads (and frames) at once."""

CREDIT_FMT = struct.Struct(">I")


class WireError(ValueError):
    """The byte stream cannot be a sequence of frames (out of sync, or a corrupt message): the connection is
    beyond repair and must be closed."""


class ConnectionClosed(WireError):
    """A request on a connection that is closed already."""


def frame(kind: int, ident: int, payload: bytes = b"") -> bytes:
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD}")
    return HEADER.pack(kind, 0, ident, len(payload)) + payload


def message(kind: int, ident: int, body: dict[str, Any]) -> bytes:
    """A JSON frame (REQUEST, RESPONSE, EVENT)."""
    return frame(kind, ident, json.dumps(body, separators=(",", ":")).encode())


def credit(stream: int, amount: int) -> bytes:
    return frame(CREDIT, stream, CREDIT_FMT.pack(amount))


def credit_amount(payload: bytes) -> int:
    """A CREDIT frame's grant; a malformed one means the stream is out of sync."""
    if len(payload) != CREDIT_FMT.size:
        raise WireError(f"a credit frame of {len(payload)} bytes: stream out of sync")
    return int(CREDIT_FMT.unpack(payload)[0])


def decode_json(payload: bytes) -> dict[str, Any]:
    """A JSON frame's body; anything but a JSON object is a corrupt stream."""
    try:
        body = json.loads(payload)
    except ValueError as e:  # UnicodeDecodeError is one too
        raise WireError(f"a message that is not JSON ({e})") from None
    if not isinstance(body, dict):
        raise WireError(f"a message that is not a JSON object but {type(body).__name__}")
    return body


class Decoder:
    """Incremental decoder: feed bytes as they come, in any chunks; get the complete (kind, ident, payload)
    frames. What is left of a partial frame stays here until the rest arrives (unconsumed())."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[tuple[int, int, bytes]]:
        buf = self._buf
        buf += data
        out = []
        start, size, total = 0, HEADER.size, len(buf)
        while total - start >= size:
            kind, _flags, ident, length = HEADER.unpack_from(buf, start)
            if length > MAX_PAYLOAD:
                raise WireError(f"frame of {length} bytes exceeds {MAX_PAYLOAD}: stream out of sync")
            end = start + size + length
            if end > total:
                break
            out.append((kind, ident, bytes(buf[start + size:end])))
            start = end
        if start:
            del buf[:start]
        return out

    def unconsumed(self) -> bytes:
        """The start of a frame not complete yet: for handing the byte stream over to another reader."""
        return bytes(self._buf)


def exit_code(status: dict[str, Any]) -> int:
    """A process's status (an exit event's) as Docker reports it: its exit code, or 128+N when killed by
    signal N."""
    if status.get("signal"):
        return 128 + int(status["signal"])
    return int(status.get("code", 255))
