"""Small pieces several commands share."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from runtime.runvm.errors import RunvmError
from runtime.runvm.wait import Deadline

SHIM_CLEANUP_S = 6.0
"""A shim told to give up (SIGTERM) first stops its VM (stop.py, at most ~4.5 s), then reports; then SIGKILL."""


def write_pid_file(path: str, pid: int) -> None:
    """Digits only, no newline, and atomic: containerd treats the file's appearance as "done"."""
    p = Path(path)
    if not p.is_absolute():
        p = Path.cwd() / p
    with tempfile.NamedTemporaryFile("w", dir=p.parent, prefix=f".{p.name}.", delete=False) as f:
        f.write(str(pid))
    os.replace(f.name, p)


def wait_ready(fd: int, child: int, what: str, timeout: float) -> None:
    """Read the shim's verdict ("ok" or "error ..."); on failure reap the child and raise its message. A shim
    that takes too long is told to give up (SIGTERM: it stops its VM and leaves), then killed."""
    chunks = []
    deadline = Deadline(timeout, f"the vm-shim to finish {what}")
    os.set_blocking(fd, False)
    import select

    while True:
        if deadline.expired():
            from runtime.runvm.vm import stop

            stop.stop(child, quit_s=0, term_s=SHIM_CLEANUP_S)
            os.close(fd)
            raise deadline.error()
        ready, _, _ = select.select([fd], [], [], deadline.left())
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
