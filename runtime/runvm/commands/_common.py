"""Small pieces several commands share."""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from pathlib import Path

from runtime.runvm.errors import RunvmError


def write_pid_file(path: str, pid: int) -> None:
    """Digits only, no newline, and atomic: containerd treats the file's appearance as "done"."""
    p = Path(path)
    if not p.is_absolute():
        p = Path.cwd() / p
    with tempfile.NamedTemporaryFile("w", dir=p.parent, prefix=f".{p.name}.", delete=False) as f:
        f.write(str(pid))
    os.replace(f.name, p)


def wait_ready(fd: int, child: int, what: str, timeout: float) -> None:
    """Read the shim's verdict ("ok" or "error ..."); on failure reap the child and raise its message."""
    chunks = []
    deadline = time.monotonic() + timeout
    os.set_blocking(fd, False)
    import select

    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            os.kill(child, 9)
            os.waitpid(child, 0)
            raise RunvmError(f"{what} did not complete within {timeout:.0f}s")
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            continue
        data = os.read(fd, 65536)
        if not data:
            break
        chunks.append(data)
    os.close(fd)
    msg = b"".join(chunks).decode(errors="replace")
    if msg.startswith("ok"):
        return
    with contextlib.suppress(ChildProcessError):
        os.waitpid(child, 0)
    raise RunvmError(msg[6:] if msg.startswith("error ") else f"{what} failed (the shim exited without a word)")
