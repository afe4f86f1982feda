"""The wire protocol between the host (vm-shim, exec-shims) and the guest agent, shared by both sides.

One byte stream carries framed messages: requests and responses (JSON), events (JSON), and the stdio of every
process as DATA/EOF frames on numbered streams. Each stream has a credit window, so one stalled reader never
blocks the others or the control messages, and no side buffers more than the window.
Frame: type (u8), flags (u8), stream or request id (u32), payload length (u32), payload.
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
RESPONSE = 2  # id = request id; payload: {"ok": bool, "error": str?, ...}
EVENT = 3     # id = 0; payload: {"event": "exit" | "oom" | "ready" | ..., ...}
DATA = 4      # id = stream id; payload: bytes
EOF = 5       # id = stream id; no payload
CREDIT = 6    # id = stream id; payload: u32 bytes the receiver can take more

WINDOW = 256 * 1024
"""Credit every stream starts with; a receiver grants more as it consumes."""
CHUNK = 64 * 1024

CREDIT_FMT = struct.Struct(">I")


def frame(kind: int, ident: int, payload: bytes = b"") -> bytes:
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD}")
    return HEADER.pack(kind, 0, ident, len(payload)) + payload


def message(kind: int, ident: int, body: dict[str, Any]) -> bytes:
    return frame(kind, ident, json.dumps(body, separators=(",", ":")).encode())


def credit(stream: int, amount: int) -> bytes:
    return frame(CREDIT, stream, CREDIT_FMT.pack(amount))


class Decoder:
    """Incremental decoder: feed bytes, get complete (kind, ident, payload) frames."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[tuple[int, int, bytes]]:
        self._buf += data
        out = []
        while len(self._buf) >= HEADER.size:
            kind, _flags, ident, length = HEADER.unpack_from(self._buf)
            if length > MAX_PAYLOAD:
                raise ValueError(f"frame of {length} bytes exceeds {MAX_PAYLOAD}: stream out of sync")
            end = HEADER.size + length
            if len(self._buf) < end:
                break
            out.append((kind, ident, bytes(self._buf[HEADER.size:end])))
            del self._buf[:end]
        return out


def exit_code(status: dict[str, Any]) -> int:
    """A process's status as Docker reports it: its exit code, or 128+N when killed by signal N."""
    if status.get("signal"):
        return 128 + int(status["signal"])
    return int(status.get("code", 255))
