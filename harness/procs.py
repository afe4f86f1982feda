"""Host process and mount helpers for clean-up: only ever by pid or by exact path, never by name."""

from __future__ import annotations

import contextlib
import ctypes
import signal
from pathlib import Path

import psutil

_libc = ctypes.CDLL(None, use_errno=True)
MNT_DETACH = 2


def _process(pid: int) -> psutil.Process | None:
    try:
        return psutil.Process(pid)
    except (psutil.NoSuchProcess, ValueError):
        return None


def cmdline(pid: int) -> list[str]:
    p = _process(pid)
    try:
        return p.cmdline() if p else []
    except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
        return []


def start_time(pid: int) -> float | None:
    """When the process started (psutil's create_time), to tell it from a later process given the same pid."""
    try:
        return psutil.Process(pid).create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


def comm(pid: int) -> str:
    p = _process(pid)
    try:
        return p.name() if p else "?"
    except psutil.Error:
        return "?"


def descendants(pid: int) -> list[int]:
    """All processes below pid, deepest first (so children die before the parent that could respawn them)."""
    p = _process(pid)
    if p is None:
        return []
    order: list[int] = []

    def walk(proc: psutil.Process) -> None:
        try:
            kids = proc.children()
        except psutil.Error:
            return
        for kid in kids:
            walk(kid)
            order.append(kid.pid)

    walk(p)
    return order


def alive(pid: int) -> bool:
    """Running or sleeping; a zombie is dead for our purposes."""
    p = _process(pid)
    try:
        return p is not None and p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def kill_tree(pid: int, sig: int = signal.SIGKILL, wait_s: float = 5.0) -> list[int]:
    """Kill pid and everything below it; returns the pids signalled."""
    victims = [*descendants(pid), pid]
    procs = [p for v in victims if (p := _process(v)) is not None]
    for p in procs:
        with contextlib.suppress(psutil.Error):
            p.send_signal(sig)
    psutil.wait_procs(procs, timeout=wait_s)
    return victims


def terminate(pid: int, grace_s: float = 20.0) -> None:
    """SIGTERM, then SIGKILL of the whole tree after the grace period."""
    p = _process(pid)
    if p is None:
        return
    with contextlib.suppress(psutil.Error):
        p.terminate()
    _gone, still = psutil.wait_procs([p], timeout=grace_s)
    if still and alive(pid):
        kill_tree(pid)


def mounts_under(prefix: str) -> list[str]:
    """Mount points at or below prefix in our mount namespace, deepest first."""
    prefix = prefix.rstrip("/")
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if point == prefix or point.startswith(prefix + "/"):
            points.append(point)
    return sorted(set(points), key=lambda p: p.count("/"), reverse=True)


def unmount_under(prefix: str) -> list[str]:
    done = []
    for _ in range(5):  # stacked mounts need several passes
        points = mounts_under(prefix)
        if not points:
            break
        for point in points:
            if _libc.umount2(point.encode(), MNT_DETACH) == 0:
                done.append(point)
    return done
