"""Guest cgroups: the same hierarchy layout as the host, the container's cgroup, its limits, stats and freezer.

Limits are enforced here, inside the VM, so the container observes them exactly as under runc; the VM's own
size only has to be large enough (the host grows it when an update asks for more).
"""

from __future__ import annotations

import contextlib
import os
import time
from typing import Any

from runtime.agent import libc
from runtime.agent.cgfiles import ROOT, SPARE, SPARE_PARENT
from runtime.agent.cgfiles import read as _read
from runtime.agent.cgfiles import write as _write
from runtime.agent.cgroups_v2 import Cgroup2, enable_controllers

UNLIMITED = "-1"


def unified(layout: list[dict[str, str]]) -> bool:
    """Is the layout a v2 host's: the unified hierarchy at /sys/fs/cgroup itself?"""
    return any(e["type"] == "cgroup2" and e["dir"] == "" for e in layout)


def _fstype(point: str) -> str | None:
    with open("/proc/self/mounts") as f:
        found = [line.split()[2] for line in f if line.split()[1] == point]
    return found[-1] if found else None


def mount_layout(layout: list[dict[str, str]]) -> list[dict[str, str]]:
    """Mount the host's layout; returns what was mounted (controllers the guest kernel lacks are skipped)."""
    if unified(layout):
        if _fstype(ROOT) != "cgroup2":
            libc.mount("cgroup2", ROOT, "cgroup2", libc.MS_NOSUID | libc.MS_NODEV | libc.MS_NOEXEC, "nsdelegate")
        enable_controllers(ROOT)
        return [e for e in layout if e["dir"] == ""]
    if not os.path.ismount(ROOT):
        libc.mount("tmpfs", ROOT, "tmpfs", libc.MS_NOSUID | libc.MS_NODEV | libc.MS_NOEXEC, "mode=755")
    available = set()
    with open("/proc/cgroups") as f:
        for line in f:
            if not line.startswith("#"):
                name, _h, _n, enabled = line.split()
                if enabled == "1":
                    available.add(name)
    mounted = []
    for entry in layout:
        target = os.path.join(ROOT, entry["dir"])
        if os.path.ismount(target):
            mounted.append(entry)
            continue
        os.makedirs(target, exist_ok=True)
        try:
            if entry["type"] == "cgroup2":
                libc.mount("cgroup2", target, "cgroup2", libc.MS_NOSUID | libc.MS_NODEV | libc.MS_NOEXEC)
            else:
                opts = [o for o in entry["options"].split(",") if o.startswith("name=") or o in available]
                if not opts:
                    continue
                libc.mount("cgroup", target, "cgroup", libc.MS_NOSUID | libc.MS_NODEV | libc.MS_NOEXEC,
                           ",".join(opts))
        except OSError:
            continue
        mounted.append(entry)
    return mounted


class Cgroup:
    def __init__(self, layout: list[dict[str, str]], path: str) -> None:
        self.path = "/" + path.strip("/")
        self.from_spare = False
        self.dirs: dict[str, str] = {}
        for entry in layout:
            if entry["type"] == "cgroup2":
                continue
            for ctrl in entry["options"].split(","):
                if not ctrl.startswith("name="):
                    self.dirs[ctrl] = os.path.join(ROOT, entry["dir"], self.path.lstrip("/"))
            if any(o.startswith("name=") for o in entry["options"].split(",")):
                self.dirs[entry["dir"]] = os.path.join(ROOT, entry["dir"], self.path.lstrip("/"))

    def create(self) -> None:
        renamed = set()
        for ctrl, d in self.dirs.items():
            spare = os.path.join(os.path.dirname(d), SPARE)
            if not os.path.isdir(d) and os.path.isdir(spare):
                with contextlib.suppress(OSError):
                    os.rename(spare, d)  # v1 allows a rename within the same parent
                    renamed.add(d)
            os.makedirs(d, exist_ok=True)
            if ctrl == "cpuset":
                self._inherit_cpuset(d)
        self.from_spare = bool(renamed) and renamed == set(self.dirs.values())
        """Every hierarchy's cgroup is the template's spare, renamed: what was in the spare is in it now."""

    @classmethod
    def make_spare(cls, layout: list[dict[str, str]], pid: int | None = None) -> bool:
        """The next container's cgroup, made ahead of time under SPARE_PARENT (see create), with pid (the next
        container's waiting init) in it: joining costs a synchronize_rcu per hierarchy, which the template pays
        once instead of every container. True when pid is in it in every hierarchy."""
        spare = cls(layout, os.path.join(SPARE_PARENT, SPARE))
        try:
            spare.create()
        except OSError:
            return False
        return pid is not None and spare.join(pid)

    @staticmethod
    def _inherit_cpuset(d: str) -> None:
        """A new v1 cpuset is empty; fill it from the nearest ancestor, top down. The chain is the agent's own
        (made for this container, or ahead of time in the template, before CPUs were hot-plugged), so each node
        takes its parent's CPUs and memory nodes as they are now, as a fresh mkdir would under runc."""
        chain = []
        cur = d
        while cur.startswith(ROOT) and cur != os.path.join(ROOT, "cpuset"):
            chain.append(cur)
            cur = os.path.dirname(cur)
        for node in reversed(chain):
            parent = os.path.dirname(node)
            for f in ("cpuset.cpus", "cpuset.mems"):
                want = _read(os.path.join(parent, f)).strip()
                if _read(os.path.join(node, f)).strip() != want:
                    _write(os.path.join(node, f), want)

    def widen_cpuset(self, cpus: str, *, ancestors_only: bool = False) -> None:
        """New CPUs reach the root cpuset only; carry them down to the container, parents first (only to its
        parents when the container's own set is pinned: a pinned set must still find its CPUs in theirs)."""
        if "cpuset" not in self.dirs:
            return
        chain = []
        cur = self.dirs["cpuset"]
        while cur.startswith(ROOT) and cur != os.path.join(ROOT, "cpuset"):
            chain.append(cur)
            cur = os.path.dirname(cur)
        if ancestors_only:
            chain = chain[1:]
        for node in reversed(chain):
            with contextlib.suppress(OSError):
                _write(os.path.join(node, "cpuset.cpus"), cpus)

    def join(self, pid: int = 0) -> bool:
        """True when pid is now in every hierarchy's cgroup (co-mounted controllers share one directory)."""
        ok = True
        for d in set(self.dirs.values()):
            try:
                _write(os.path.join(d, "cgroup.procs"), str(pid))
            except OSError:
                ok = False
        return ok

    def file(self, ctrl: str, name: str) -> str:
        return os.path.join(self.dirs[ctrl], name)

    def has(self, ctrl: str, name: str) -> bool:
        return ctrl in self.dirs and os.path.exists(self.file(ctrl, name))

    def set(self, ctrl: str, name: str, value: Any) -> None:
        if ctrl in self.dirs:
            _write(self.file(ctrl, name), str(value))

    def apply(self, res: dict[str, Any]) -> list[str]:
        """LinuxResources -> cgroup files. Returns warnings for knobs this guest kernel does not have."""
        warnings: list[str] = []
        mem = res.get("memory") or {}
        if mem:
            self._memory(mem, warnings)
        cpu = res.get("cpu") or {}
        if cpu.get("shares"):
            self.set("cpu", "cpu.shares", cpu["shares"])
        if cpu.get("period"):
            self.set("cpu", "cpu.cfs_period_us", cpu["period"])
        if cpu.get("quota"):
            self.set("cpu", "cpu.cfs_quota_us", cpu["quota"])
        if cpu.get("cpus"):
            # as on a host, where Docker's parent cgroup holds every CPU: a v1 cpuset outside its parent's is
            # refused (EACCES), and the template made the parents with the CPUs the VM had then
            if "cpuset" in self.dirs:
                with contextlib.suppress(OSError):
                    self.widen_cpuset(_read(os.path.join(ROOT, "cpuset", "cpuset.cpus")).strip(),
                                      ancestors_only=True)
            self.set("cpuset", "cpuset.cpus", cpu["cpus"])
        if cpu.get("mems"):
            self.set("cpuset", "cpuset.mems", cpu["mems"])
        pids = res.get("pids") or {}
        if pids.get("limit"):
            self.set("pids", "pids.max", "max" if pids["limit"] < 0 else pids["limit"])
        blkio = res.get("blockIO") or {}
        if blkio.get("weight") and self.has("blkio", "blkio.weight"):
            self.set("blkio", "blkio.weight", blkio["weight"])
        return warnings

    def _memory(self, mem: dict[str, Any], warnings: list[str]) -> None:
        """As runc: 0 (or absent) leaves a value as it is, -1 lifts the limit."""
        limit, swap = mem.get("limit") or None, mem.get("swap") or None
        current = int(_read(self.file("memory", "memory.limit_in_bytes")) or 0) if "memory" in self.dirs else 0
        order = []
        if limit is not None:
            order.append(("memory.limit_in_bytes", limit))
        if swap is not None and self.has("memory", "memory.memsw.limit_in_bytes"):
            order.append(("memory.memsw.limit_in_bytes", swap))
        # memsw must stay >= limit at every step: raise memsw first when growing, the limit first when shrinking
        growing = limit is not None and (limit < 0 or limit > current)
        if growing:
            order.reverse()
        for name, value in order:
            self.set("memory", name, value)
        if mem.get("reservation"):
            self.set("memory", "memory.soft_limit_in_bytes", mem["reservation"])
        if mem.get("kernel"):
            try:
                self.set("memory", "memory.kmem.limit_in_bytes", mem["kernel"])
            except OSError as e:
                warnings.append(f"kernel memory limit not applied: {e.strerror}")
        if mem.get("swappiness") is not None and 0 <= mem["swappiness"] <= 100:
            with contextlib.suppress(OSError):
                self.set("memory", "memory.swappiness", mem["swappiness"])
        if mem.get("disableOOMKiller"):
            self.set("memory", "memory.oom_control", 1)

    def pids(self) -> list[int]:
        d = self.dirs.get("pids") or self.dirs.get("memory") or next(iter(self.dirs.values()))
        pids: set[int] = set()
        for root, _dirs, files in os.walk(d):
            if "cgroup.procs" in files:
                pids.update(int(x) for x in _read(os.path.join(root, "cgroup.procs")).split())
        return sorted(pids)

    def freeze(self, frozen: bool, timeout: float = 10) -> None:
        state = "FROZEN" if frozen else "THAWED"
        self.set("freezer", "freezer.state", state)
        deadline = time.monotonic() + timeout
        while _read(self.file("freezer", "freezer.state")).strip() != state:
            if time.monotonic() > deadline:
                raise TimeoutError(f"freezer did not reach {state}")
            time.sleep(0.01)

    def is_frozen(self) -> bool:
        return _read(self.file("freezer", "freezer.state")).strip() not in ("THAWED", "")

    def woke_for_oom(self) -> bool:
        """The watch_oom eventfd fires only on an OOM."""
        return True

    def oom_kills(self) -> int:
        for line in _read(self.file("memory", "memory.oom_control")).splitlines():
            if line.startswith("oom_kill "):
                return int(line.split()[1])
        return 0

    def watch_oom(self) -> int:
        """An eventfd that becomes readable on every OOM in the container's memory cgroup (v1 notification)."""
        efd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        ocfd = os.open(self.file("memory", "memory.oom_control"), os.O_RDONLY | os.O_CLOEXEC)
        _write(self.file("memory", "cgroup.event_control"), f"{efd} {ocfd}")
        os.close(ocfd)
        return efd

    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if "memory" in self.dirs:
            out["memory"] = {
                "usage": int(_read(self.file("memory", "memory.usage_in_bytes")) or 0),
                "max_usage": int(_read(self.file("memory", "memory.max_usage_in_bytes")) or 0),
                "limit": int(_read(self.file("memory", "memory.limit_in_bytes")) or 0),
                "failcnt": int(_read(self.file("memory", "memory.failcnt")) or 0),
                "stat": {k: int(v) for k, v in (ln.split() for ln in
                                                _read(self.file("memory", "memory.stat")).splitlines())},
            }
        if "cpuacct" in self.dirs:
            out["cpu"] = {
                "usage": int(_read(self.file("cpuacct", "cpuacct.usage")) or 0),
                "percpu": [int(x) for x in _read(self.file("cpuacct", "cpuacct.usage_percpu")).split()],
                "throttling": dict(ln.split() for ln in _read(self.file("cpu", "cpu.stat")).splitlines())
                if "cpu" in self.dirs else {},
            }
        if "pids" in self.dirs:
            cur = _read(self.file("pids", "pids.current")).strip()
            mx = _read(self.file("pids", "pids.max")).strip()
            out["pids"] = {"current": int(cur or 0), "limit": 0 if mx in ("max", "") else int(mx)}
        return out

    def remove(self) -> None:
        for d in self.dirs.values():
            with contextlib.suppress(OSError):
                os.rmdir(d)


AnyCgroup = Cgroup | Cgroup2


def open_cgroup(layout: list[dict[str, str]], path: str) -> AnyCgroup:
    """The container's cgroup in whichever hierarchy the guest mirrors."""
    return Cgroup2(path) if unified(layout) else Cgroup(layout, path)


def make_spare(layout: list[dict[str, str]], pid: int | None = None) -> bool:
    if unified(layout):
        return Cgroup2.make_spare(pid, SPARE_PARENT)
    return Cgroup.make_spare(layout, pid)

