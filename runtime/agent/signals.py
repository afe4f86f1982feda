"""Signals to a container's init right after it started. The init is PID 1 of its pid namespace, so the kernel
drops any signal it has no handler for (SIGKILL and SIGSTOP aside). A program that installs its handler first
thing (`trap ... TERM`, a server's SIGTERM handler) does so within a millisecond under runc, but takes tens of
milliseconds under TCG, long enough for a `docker stop` sent right after `docker run -d` to arrive first and
vanish. For a short while after the exec, such a signal waits until the handler is in place."""

from __future__ import annotations

import asyncio
import os
import signal
import time

SETTLE_S = 1.0
"""How long after the exec a signal may wait for the init's handler. After that it is sent as it is (and
dropped by the kernel if there is still no handler, as under runc)."""
POLL_S = 0.005


def _status(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/status") as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)


def handled(pid: int, sig: int) -> bool:
    """True if pid has a handler for sig, ignores it, or has exited: waiting would not change what happens."""
    st = _status(pid)
    if st.get("State", "").startswith(("Z", "X")):
        return True
    bit = 1 << (sig - 1)
    return bool((int(st.get("SigCgt", "0"), 16) | int(st.get("SigIgn", "0"), 16)) & bit)


async def send_to_init(pid: int, sig: int, exec_at: float | None, settle_s: float = SETTLE_S) -> None:
    """os.kill, but held back (up to settle_s after exec_at, a time.monotonic() value) while the init has no
    handler for sig yet."""
    if exec_at is not None and sig not in (signal.SIGKILL, signal.SIGSTOP):
        deadline = exec_at + settle_s
        try:
            while time.monotonic() < deadline and not handled(pid, sig):
                await asyncio.sleep(POLL_S)
        except (OSError, ValueError):
            pass  # gone, or unreadable: os.kill below says what it has to say
    os.kill(pid, sig)
