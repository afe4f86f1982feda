"""Where the wire format used to live: it is runtime.wire.frames now. Only re-exported for host modules not yet
moved over (runtime.runvm.shim.vm_shim); new code imports runtime.wire."""

from __future__ import annotations

from runtime.wire.frames import (
    CHUNK,
    CREDIT,
    CREDIT_FMT,
    DATA,
    EOF,
    EVENT,
    HEADER,
    MAX_PAYLOAD,
    REQUEST,
    RESPONSE,
    WINDOW,
    Decoder,
    credit,
    exit_code,
    frame,
    message,
)

__all__ = ["CHUNK", "CREDIT", "CREDIT_FMT", "DATA", "EOF", "EVENT", "HEADER", "MAX_PAYLOAD", "REQUEST", "RESPONSE",
           "WINDOW", "Decoder", "credit", "exit_code", "frame", "message"]
