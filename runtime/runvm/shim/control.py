"""The CLI side of the vm-shim's control socket: one request, one response, plain blocking sockets
(commands like `runvm start` must stay fast to start: no asyncio). The bookkeeping is runtime.wire's."""

from __future__ import annotations

import socket
from pathlib import Path

from runtime.runvm.errors import RunvmError
from runtime.wire.connection import Connection, Reply
from runtime.wire.frames import WireError

TYPE_CHECKING = False  # typing costs ~9 ms per runvm invocation
if TYPE_CHECKING:
    from typing import Any


def request(sock_dir: Path, body: dict[str, Any], timeout: float = 60) -> dict[str, Any]:
    path = sock_dir / "shim.sock"
    op = body.get("op")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        try:
            s.connect(str(path))
        except OSError as e:
            raise RunvmError(f"container not running (its shim does not answer: {e.strerror})") from None
        wire = Connection("the container's shim")
        _ident, data = wire.request(body)
        s.sendall(data)
        while True:
            try:
                data = s.recv(1 << 16)
            except TimeoutError:
                raise RunvmError(f"no answer to {op} within {timeout}s") from None
            if not data:
                raise RunvmError(f"the container's shim went away during {op}")
            try:
                events = wire.receive(data)
            except WireError as e:
                raise RunvmError(f"the container's shim answered {op} with garbage ({e})") from None
            for ev in events:
                if isinstance(ev, Reply):
                    if not ev.ok:
                        raise RunvmError(ev.error)
                    return ev.body
    finally:
        s.close()
