"""Guest cgroups on the unified hierarchy (a cgroup v2 host, or runvm --guest-cgroup=v2): the container's
cgroup, its limits, stats, freezer and OOM count, written as runc writes them on a v2 host.

The same interface as cgroups.Cgroup (the v1 one), so the agent does not care which version the guest mirrors.
Conversions follow runc's (its cpu.weight, io.weight and swap conversions), so the files a
container reads hold what they would hold under runc."""

from __future__ import annotations

import contextlib
import math
import os
import time
from typing import Any

from runtime.agent import libc
from runtime.agent.cgfiles import ROOT, SPARE
from runtime.agent.cgfiles import keyed as _keyed
from runtime.agent.cgfiles import read as _read
from runtime.agent.cgfiles import write as _write

CONTROLLERS = ("cpuset", "cpu", "io", "memory", "hugetlb", "pids", "rdma", "misc")
IN_MODIFY = 0x2
IN_NONBLOCK_CLOEXEC = os.O_NONBLOCK | os.O_CLOEXEC


def cpu_weight(shares: int) -> int:
    """v1 cpu.shares [2, 262144] as v2 cpu.weight [1, 10000], as runc 1.3 and later convert it: 10 to the power
    of a quadratic in log2(shares) through (2, 1), (1024, 100) and (262144, 10000), rounded up, so Docker's
    default 1024 is v2's default 100 (runc 1.1's linear map gave 39)."""
    if shares == 0:
        return 0
    if shares <= 2:
        return 1
    if shares >= 262144:
        return 10000
    lg = math.log2(shares)
    return math.ceil(10 ** ((lg * lg + 125 * lg) / 612 - 7 / 34))


def io_weight(blkio_weight: int) -> int:
    """runc's mapping of v1 blkio.weight [10, 1000] onto v2 io.weight [1, 10000]."""
    return 1 + (blkio_weight - 10) * 9999 // 990


def swap_max(limit: int | None, memsw: int | None) -> str | None:
    """v1's memory+swap total as v2's swap-only memory.swap.max, as runc converts it."""
    if memsw is None:
        return None
    if memsw < 0:
        return "max"
    if limit is None or limit < 0:
        return None  # a total without a memory limit has no swap-only meaning; runc refuses it earlier
    return str(max(memsw - limit, 0))


def enable_controllers(node: str) -> None:
    """Hand the controllers node has to its children (a child sees only what its parent's subtree_control
    lists). Each separately: a controller the kernel refuses (e.g. cpu with a realtime process) stays off."""
    have = _read(os.path.join(node, "cgroup.controllers")).split()
    on = set(_read(os.path.join(node, "cgroup.subtree_control")).split())
    for c in have:
        if c not in on:
            with contextlib.suppress(OSError):
                _write(os.path.join(node, "cgroup.subtree_control"), f"+{c}")


class Cgroup2:
    def __init__(self, path: str) -> None:
        self.path = "/" + path.strip("/")
        self.dir = os.path.join(ROOT, self.path.lstrip("/"))
        # one directory for every controller (and the freezer, built into each v2 cgroup): code asking for a
        # controller's directory, as on v1, gets it
        self.dirs = {c: self.dir for c in ("unified", "freezer", *CONTROLLERS)}
        self.from_spare = False
        self._oom_seen = 0

    def create(self) -> None:
        spare = os.path.join(os.path.dirname(self.dir), SPARE)
        self._ancestors()
        if not os.path.isdir(self.dir) and os.path.isdir(spare):
            with contextlib.suppress(OSError):
                os.rename(spare, self.dir)
                self.from_spare = True
        os.makedirs(self.dir, exist_ok=True)

    def _ancestors(self) -> None:
        """Every ancestor exists and passes its controllers down (as runc's fs2 manager does)."""
        node = ROOT
        enable_controllers(node)
        for part in self.path.strip("/").split("/")[:-1]:
            node = os.path.join(node, part)
            os.makedirs(node, exist_ok=True)
            enable_controllers(node)

    @classmethod
    def make_spare(cls, pid: int | None, parent: str) -> bool:
        spare = cls(os.path.join(parent, SPARE))
        try:
            spare.create()
        except OSError:
            return False
        return pid is not None and spare.join(pid)

    def widen_cpuset(self, cpus: str, *, ancestors_only: bool = False) -> None:
        """v2 cpusets are effective sets: an empty cpuset.cpus takes the parent's, so hot-plugged CPUs reach the
        container unless its own set is pinned; nothing to carry down."""

    def join(self, pid: int = 0) -> bool:
        try:
            _write(os.path.join(self.dir, "cgroup.procs"), str(pid))
        except OSError:
            return False
        return True

    def file(self, _ctrl: str, name: str) -> str:
        return os.path.join(self.dir, name)

    def has(self, _ctrl: str, name: str) -> bool:
        return os.path.exists(self.file("", name))

    def set(self, _ctrl: str, name: str, value: Any) -> None:
        _write(self.file("", name), str(value))

    def apply(self, res: dict[str, Any]) -> list[str]:
        """LinuxResources -> v2 files. Returns warnings for what v2 has no file for (runc ignores those too)."""
        warnings: list[str] = []
        mem = res.get("memory") or {}
        limit, memsw = mem.get("limit") or None, mem.get("swap") or None
        swap = swap_max(limit, memsw)
        if swap is not None and self.has("", "memory.swap.max"):
            # memory.swap.max is independent of memory.max: no ordering constraint as in v1
            self.set("", "memory.swap.max", swap)
        if limit is not None:
            self.set("", "memory.max", "max" if limit < 0 else limit)
        if mem.get("reservation"):
            self.set("", "memory.low", "max" if mem["reservation"] < 0 else mem["reservation"])
        if mem.get("kernel"):
            warnings.append("kernel memory limit not applied: cgroup v2 has no kmem limit")
        cpu = res.get("cpu") or {}
        if cpu.get("shares"):
            self.set("", "cpu.weight", cpu_weight(int(cpu["shares"])))
        if cpu.get("quota") or cpu.get("period"):
            quota = cpu.get("quota")
            now = _read(self.file("", "cpu.max")).split()
            period = cpu.get("period") or (int(now[1]) if len(now) == 2 else 100000)
            self.set("", "cpu.max", f"{'max' if not quota or quota < 0 else quota} {period}")
        if cpu.get("cpus"):
            self.set("", "cpuset.cpus", cpu["cpus"])
        if cpu.get("mems"):
            self.set("", "cpuset.mems", cpu["mems"])
        pids = res.get("pids") or {}
        if pids.get("limit"):
            self.set("", "pids.max", "max" if pids["limit"] < 0 else pids["limit"])
        blkio = res.get("blockIO") or {}
        if blkio.get("weight") and self.has("", "io.weight"):
            self.set("", "io.weight", f"default {io_weight(int(blkio['weight']))}")
        return warnings

    def pids(self) -> list[int]:
        found: set[int] = set()
        for root, _dirs, files in os.walk(self.dir):
            if "cgroup.procs" in files:
                found.update(int(x) for x in _read(os.path.join(root, "cgroup.procs")).split())
        return sorted(found)

    def freeze(self, frozen: bool, timeout: float = 10) -> None:
        want = "1" if frozen else "0"
        self.set("", "cgroup.freeze", want)
        deadline = time.monotonic() + timeout
        while _keyed(self.file("", "cgroup.events")).get("frozen") != want:
            if time.monotonic() > deadline:
                raise TimeoutError(f"cgroup.freeze did not reach frozen {want}")
            time.sleep(0.01)

    def is_frozen(self) -> bool:
        return _keyed(self.file("", "cgroup.events")).get("frozen") == "1"

    def oom_kills(self) -> int:
        return int(_keyed(self.file("", "memory.events")).get("oom_kill") or 0)

    def watch_oom(self) -> int:
        """An inotify fd that becomes readable when memory.events changes (v2 has no OOM eventfd)."""
        fd = libc.inotify_init1(IN_NONBLOCK_CLOEXEC)
        libc.inotify_add_watch(fd, self.file("", "memory.events"), IN_MODIFY)
        self._oom_seen = self.oom_kills()
        return fd

    def woke_for_oom(self) -> bool:
        """Did the oom_kill count grow since the last wake? (memory.events also changes for high and max events.)"""
        now = self.oom_kills()
        grew, self._oom_seen = now > self._oom_seen, now
        return grew

    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        stat = {k: int(v) for k, v in (ln.split() for ln in _read(self.file("", "memory.stat")).splitlines())}
        mx = _read(self.file("", "memory.max")).strip()
        out["memory"] = {
            "usage": int(_read(self.file("", "memory.current")) or 0),
            "max_usage": int(_read(self.file("", "memory.peak")) or 0),
            "limit": 0 if mx in ("max", "") else int(mx),
            "failcnt": int(_keyed(self.file("", "memory.events")).get("max") or 0),
            "stat": stat,
        }
        cpu = {k: int(v) for k, v in _keyed(self.file("", "cpu.stat")).items()}
        out["cpu"] = {"usage": cpu.get("usage_usec", 0) * 1000, "percpu": [],
                      "throttling": {k: str(v) for k, v in cpu.items() if k.startswith("nr_") or k == "throttled_usec"}}
        cur, pmx = _read(self.file("", "pids.current")).strip(), _read(self.file("", "pids.max")).strip()
        out["pids"] = {"current": int(cur or 0), "limit": 0 if pmx in ("max", "") else int(pmx)}
        return out

    def remove(self) -> None:
        with contextlib.suppress(OSError):
            os.rmdir(self.dir)

