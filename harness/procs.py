"""Host process and mount helpers for clean-up: only ever by pid or by exact path, never by name."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import time
from pathlib import Path

_libc = ctypes.CDLL(None, use_errno=True)
MNT_DETACH = 2


def cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")[:-1]
    except OSError:
        return []


def parent_map() -> dict[int, int]:
    parents = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                stat = Path(entry.path, "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    return parents


def descendants(pid: int) -> list[int]:
    """All processes below pid, deepest first (so children die before the parent that could respawn them)."""
    parents = parent_map()
    children: dict[int, list[int]] = {}
    for child, parent in parents.items():
        children.setdefault(parent, []).append(child)
    order: list[int] = []

    def walk(p: int) -> None:
        for c in children.get(p, []):
            walk(c)
            order.append(c)

    walk(pid)
    return order


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is dead for our purposes
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def kill_tree(pid: int, sig: int = signal.SIGKILL, wait_s: float = 5.0) -> list[int]:
    """Kill pid and everything below it; returns the pids signalled."""
    victims = [*descendants(pid), pid]
    for p in victims:
        with contextlib.suppress(ProcessLookupError):
            os.kill(p, sig)
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline and any(alive(p) for p in victims):
        time.sleep(0.05)
    return victims


def terminate(pid: int, grace_s: float = 20.0) -> None:
    """SIGTERM, then SIGKILL of the whole tree after the grace period."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and alive(pid):
        time.sleep(0.1)
    if alive(pid):
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
