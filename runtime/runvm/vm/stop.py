"""Ending a VM, the one way every path does it: QMP `quit` (QEMU closes its files and exits), then SIGTERM
(QEMU's own clean shutdown), then SIGKILL, each step bounded, and the process always reaped when it is our
child, or waited for through a pidfd when it is not (a pooled VM). The total is bounded (QUIT_S + TERM_S +
KILL_S): no command or shim exit hangs on a VM that will not die.

The resident vm-shim imports this: os, select, signal, socket and time only (no asyncio, no qemu.qmp)."""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import socket

from runtime.runvm.wait import Deadline

QUIT_S = 1.5
"""QMP connect, handshake and quit, and QEMU's exit after it: milliseconds unless the monitor is busy."""
TERM_S = 1.0
KILL_S = 2.0
"""A SIGKILLed QEMU with its guest RAM to unmap takes a moment to become a zombie."""

GONE, EXITED, QUIT, TERM, KILL, STUCK = "gone", "exited", "quit", "sigterm", "sigkill", "stuck"


def stop(pid: int, qmp_sock: str | os.PathLike[str] | None = None, *, pidfd: int | None = None,
         start: int | None = None, reap: bool = True, grace_s: float = 0.0, quit_s: float = QUIT_S,
         term_s: float = TERM_S, kill_s: float = KILL_S) -> str:
    """Stop process pid (QEMU) and say how it ended: gone (already), exited (by itself within grace_s), quit,
    sigterm, sigkill, or stuck (still there kill_s after SIGKILL). pidfd: the caller's own handle (kept open);
    without one, a pidfd is opened here, and `start` (its /proc start time) guards against a pid reused since.
    quit_s=0 skips QMP, term_s=0 SIGTERM (a vm-shim forwards SIGTERM to its container: it gets grace_s and
    SIGKILL). reap=False leaves the zombie to the caller (a Popen that records its returncode)."""
    own_fd = pidfd is None
    if own_fd:
        try:
            pidfd = os.pidfd_open(pid)
        except OSError:
            return GONE
        if start is not None:
            from runtime.runvm.state import proc_start_time

            if proc_start_time(pid) != start:
                os.close(pidfd)
                return GONE
    assert pidfd is not None
    try:
        how = _end(pidfd, str(qmp_sock) if qmp_sock else None, grace_s, quit_s, term_s, kill_s)
        if how != STUCK and reap:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)  # not ours (ECHILD): its parent, or init, reaps it
        return how
    finally:
        if own_fd:
            os.close(pidfd)


def _end(pidfd: int, qmp_sock: str | None, grace_s: float, quit_s: float, term_s: float, kill_s: float) -> str:
    if exited(pidfd, 0):
        return GONE
    if grace_s > 0 and exited(pidfd, grace_s):
        return EXITED
    if qmp_sock and quit_s > 0:
        deadline = Deadline(quit_s, "QEMU to quit")
        if send_quit(qmp_sock, deadline) and exited(pidfd, deadline.left()):
            return QUIT
    for sig, bound, how in ((signal.SIGTERM, term_s, TERM), (signal.SIGKILL, kill_s, KILL)):
        if bound <= 0 and sig == signal.SIGTERM:
            continue
        try:
            signal.pidfd_send_signal(pidfd, sig)
        except ProcessLookupError:
            return how
        if exited(pidfd, bound):
            return how
    return STUCK


def exited(pidfd: int, timeout: float) -> bool:
    """Whether the process has ended (a pidfd turns readable then), waiting up to timeout seconds."""
    return bool(select.select([pidfd], [], [], max(0.0, timeout))[0])


def send_quit(path: str, deadline: Deadline) -> bool:
    """QMP's greeting, capabilities negotiation, then `quit`; False if the monitor did not take it in time (it
    serves one client at a time: a helper holding it makes this wait out the deadline, then signals follow)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        s.settimeout(max(0.01, deadline.left()))
        s.connect(path)
        buf = _reply(s, b"", deadline, b'"QMP"')
        s.sendall(b'{"execute": "qmp_capabilities"}\n')
        _reply(s, buf, deadline, b'"return"')
        s.sendall(b'{"execute": "quit"}\n')
        # QEMU acts on a command only if the client is still there to answer: wait for the answer (or the
        # connection's end, as QEMU exits) before closing
        with contextlib.suppress(OSError):
            _reply(s, b"", deadline, b'"return"')
        return True
    except (OSError, ValueError):
        return False
    finally:
        s.close()


def _reply(s: socket.socket, buf: bytes, deadline: Deadline, marker: bytes) -> bytes:
    """Read QMP lines until one carries marker (events may come first); what follows it is returned."""
    while True:
        line, sep, rest = buf.partition(b"\n")
        if sep:
            if marker in line:
                if b'"error"' in line:
                    raise ValueError(json.loads(line).get("error"))
                return rest
            buf = rest
            continue
        s.settimeout(max(0.01, deadline.left()))
        chunk = s.recv(65536)
        if not chunk:
            raise OSError("QMP closed the connection")
        buf += chunk
