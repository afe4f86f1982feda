"""The CLI side of the vm-shim's control socket: one request, one response, plain blocking sockets
(commands like `runvm start` must stay fast to start: no asyncio)."""

from __future__ import annotations

import itertools
import json
import socket
from pathlib import Path

from runtime.agent import protocol
from runtime.runvm.errors import RunvmError

TYPE_CHECKING = False  # typing costs ~9 ms per runvm invocation
if TYPE_CHECKING:
    from typing import Any

_ids = itertools.count(1)


def request(sock_dir: Path, body: dict[str, Any], timeout: float = 60) -> dict[str, Any]:
    path = sock_dir / "shim.sock"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        try:
            s.connect(str(path))
        except OSError as e:
            raise RunvmError(f"container not running (its shim does not answer: {e.strerror})") from None
        ident = next(_ids)
        s.sendall(protocol.message(protocol.REQUEST, ident, body))
        decoder = protocol.Decoder()
        while True:
            try:
                data = s.recv(1 << 16)
            except TimeoutError:
                raise RunvmError(f"no answer to {body.get('op')} within {timeout}s") from None
            if not data:
                raise RunvmError(f"the container's shim went away during {body.get('op')}")
            for kind, rid, payload in decoder.feed(data):
                if kind == protocol.RESPONSE and rid == ident:
                    reply = json.loads(payload)
                    if not reply.get("ok"):
                        raise RunvmError(reply.get("error") or f"{body.get('op')} failed")
                    return reply
    finally:
        s.close()
