"""The container's cgroup on the host (linux.cgroupsPath, e.g. /docker/<id>): the vm-shim and QEMU live in it,
so containerd's OOM watch and `docker stats` find the VM's usage there. The guest enforces the spec's limits; the
host's cgroup gets them too, widened by what the VM itself needs (limits.py), on a v1 host (one hierarchy per
controller, this project's hosts) or a unified v2 one (memory.max, cpu.max, pids.max, cpuset.cpus).

No pathlib here: the resident vm-shim imports this module to apply limits, and pathlib costs it ~0.9 MB."""

from __future__ import annotations

import contextlib
import os

TYPE_CHECKING = False  # typing costs ~9 ms per runvm invocation
if TYPE_CHECKING:
    from typing import Any

ROOT = "/sys/fs/cgroup"
CONTROLLERS = ("memory", "cpu", "cpuacct", "cpuset", "pids")
V2_CONTROLLERS = ("memory", "cpu", "cpuset", "pids")
V1_UNLIMITED = "-1"
MOUNTINFO = "/proc/self/mountinfo"


def _mounts(mountinfo: str | None = None) -> list[dict[str, str]]:
    """Every cgroup mount at or below ROOT: dir (relative to ROOT, "" for ROOT itself), type, options."""
    if mountinfo is None:
        with open(MOUNTINFO) as f:
            mountinfo = f.read()
    out = []
    for line in mountinfo.splitlines():
        fields = line.split()
        if "-" not in fields:
            continue
        sep = fields.index("-")
        fstype, point, super_opts = fields[sep + 1], fields[4], fields[sep + 3]
        if fstype not in ("cgroup", "cgroup2") or not (point == ROOT or point.startswith(ROOT + "/")):
            continue
        opts = [o for o in super_opts.split(",") if o not in ("rw", "ro")]
        out.append({"dir": point[len(ROOT) + 1:], "type": fstype, "options": ",".join(opts)})
    return out


GUEST_CGROUP_ENV = "RUNVM_GUEST_CGROUP"
"""`v2` gives the guest the unified hierarchy whatever the host has (runvm --guest-cgroup=v2); unset or `host`:
the guest mirrors the host."""
V2_LAYOUT = [{"dir": "", "type": "cgroup2", "options": ""}]


def layout(mountinfo: str | None = None, guest: str | None = None) -> list[dict[str, str]]:
    """The cgroup mounts the guest makes (part of the template key): the host's below /sys/fs/cgroup, so a
    container sees the cgroup version and files it would see under runc on this host; on a v2 host that is the
    unified hierarchy at /sys/fs/cgroup itself."""
    guest = guest if guest is not None else os.environ.get(GUEST_CGROUP_ENV, "host")
    if guest == "v2":
        return [dict(m) for m in V2_LAYOUT]
    mounts = _mounts(mountinfo)
    if any(m["dir"] == "" and m["type"] == "cgroup2" for m in mounts):
        return [dict(m) for m in V2_LAYOUT]
    return [m for m in mounts if m["dir"]]


def _hierarchies(mountinfo: str | None, unified_controllers: str | None) -> tuple[dict[str, str], str | None]:
    v1: dict[str, str] = {}
    unified = None
    for m in _mounts(mountinfo):
        point = os.path.join(ROOT, m["dir"]) if m["dir"] else ROOT
        if m["type"] == "cgroup":
            for opt in m["options"].split(","):
                if opt in CONTROLLERS:
                    v1.setdefault(opt, point)
        elif unified is None:
            unified = point
    out = dict(v1)
    if unified is not None:
        if unified_controllers is None:
            unified_controllers = _read(os.path.join(unified, "cgroup.controllers"))
        have = set(unified_controllers.split())
        for c in V2_CONTROLLERS:
            if c not in out and c in have:
                out[c] = unified
    return out, unified


def hierarchies(mountinfo: str | None = None, unified_controllers: str | None = None) -> dict[str, str]:
    """controller -> the directory its hierarchy is mounted at: its v1 hierarchy where the host has one (a v1 or
    hybrid host), else the unified hierarchy when that carries it (cgroup.controllers of its root). v2 has no
    cpuacct: its usage is the cpu controller's cpu.stat."""
    return _hierarchies(mountinfo, unified_controllers)[0]


def version(mountinfo: str | None = None, unified_controllers: str | None = None) -> int:
    """2 when the memory controller is on the unified hierarchy, 1 otherwise (v1 or hybrid hosts)."""
    h, unified = _hierarchies(mountinfo, unified_controllers)
    return 2 if unified is not None and h.get("memory") == unified else 1


def _dirs(path: str) -> list[tuple[str, str]]:
    """(type, directory) of path in every hierarchy runvm uses: each v1 hierarchy (named ones too, as runc), and
    the unified one only when it carries controllers (a v2 host; a hybrid host's is systemd's alone)."""
    rel = path.strip("/")
    used = set(hierarchies().values())
    out = []
    for m in _mounts():
        point = os.path.join(ROOT, m["dir"]) if m["dir"] else ROOT
        if m["type"] == "cgroup" or point in used:
            out.append((m["type"], os.path.join(point, rel) if rel else point))
    return out


def exists(path: str) -> bool:
    return any(os.path.isdir(d) for _t, d in _dirs(path))


def place(path: str, pid: int, resources: dict[str, Any]) -> None:
    """Create the cgroup in every hierarchy and move pid into it (QEMU, forked later, follows). Only the weight
    and the cpuset are written here; limits come once the VM is up (apply), as they depend on how it started."""
    cpu = resources.get("cpu") or {}
    cpuset = hierarchies().get("cpuset")
    for kind, d in _dirs(path):
        os.makedirs(d, exist_ok=True)
        if kind == "cgroup2":
            _enable_controllers(d)
        elif cpuset is not None and d.startswith(cpuset + "/"):
            _inherit_cpuset(d, cpuset)
    early: dict[str, Any] = {}
    if cpu.get("cpus"):
        early["cpuset_cpus"] = str(cpu["cpus"])
    if cpu.get("shares"):
        early["cpu_shares"] = int(cpu["shares"])
    if early:
        apply(path, early)
    for _kind, d in _dirs(path):
        with contextlib.suppress(OSError):
            _write(os.path.join(d, "cgroup.procs"), str(pid))


def leave(pid: int = 0) -> None:
    """Move pid (0: the caller) to the root cgroups: for processes that are runvm's bookkeeping rather than the
    container's (helpers, docker-top stand-ins, the template builder), so they take nothing from its limits."""
    for _kind, d in _dirs("/"):
        with contextlib.suppress(OSError):
            _write(os.path.join(d, "cgroup.procs"), str(pid or os.getpid()))


def _enable_controllers(d: str) -> None:
    """v2: a controller's files appear in a cgroup only when its parent delegates it (cgroup.subtree_control),
    top down from the root, as runc does."""
    point = next((p for p in sorted(set(hierarchies().values()), key=len, reverse=True)
                  if d == p or d.startswith(p + "/")), None)
    if point is None:
        return
    chain = []
    cur = os.path.dirname(d)
    while cur.startswith(point) and len(cur) >= len(point):
        chain.append(cur)
        if cur == point:
            break
        cur = os.path.dirname(cur)
    for node in reversed(chain):
        have = set(_read(os.path.join(node, "cgroup.controllers")).split())
        wanted = " ".join(f"+{c}" for c in V2_CONTROLLERS if c in have)
        if wanted:
            with contextlib.suppress(OSError):
                _write(os.path.join(node, "cgroup.subtree_control"), wanted)


def _inherit_cpuset(d: str, point: str) -> None:
    """A new v1 cpuset is empty; fill it from its parents, top down."""
    chain = []
    cur = d
    while cur != point and cur.startswith(point + "/"):
        chain.append(cur)
        cur = os.path.dirname(cur)
    for node in reversed(chain):
        for f in ("cpuset.cpus", "cpuset.mems"):
            with contextlib.suppress(OSError):
                if not _read(os.path.join(node, f)).strip():
                    _write(os.path.join(node, f), _read(os.path.join(os.path.dirname(node), f)).strip())


def files(values: dict[str, Any], v2: bool, growing: bool = False,
          memory_now: int | None = None) -> list[tuple[str, str, str]]:
    """(controller, file, value) for limits.host_limits' values, in an order the kernel accepts (v1: `growing`
    when the memory limit rises, so memsw, which must stay >= it, is raised first). v2 keeps swap apart from
    memory: memory.swap.max is memory+swap less the memory limit, the one in `values` or else `memory_now`
    (memory.max as it is, -1 for max: an update's first pass may raise memory+swap alone)."""
    out: list[tuple[str, str, str]] = []
    if v2:
        if "memory" in values:
            out.append(("memory", "memory.max", _max(values["memory"])))
        if "memory_swap" in values:
            swap, mem = values["memory_swap"], values.get("memory", memory_now)
            out.append(("memory", "memory.swap.max",
                        "max" if swap < 0 or mem is None or mem < 0 else str(max(0, swap - mem))))
        if "memory_reservation" in values:
            out.append(("memory", "memory.low", _max(values["memory_reservation"], unlimited="0")))
        if "cpu_quota" in values or "cpu_period" in values:
            quota = values.get("cpu_quota")
            period = values.get("cpu_period") or 100_000
            out.append(("cpu", "cpu.max", f"{'max' if quota is None or quota < 0 else quota} {period}"))
        if "cpu_shares" in values:
            out.append(("cpu", "cpu.weight", str(weight_of_shares(values["cpu_shares"]))))
    else:
        mem = []
        if "memory" in values:
            mem.append(("memory", "memory.limit_in_bytes", str(values["memory"])))
        if "memory_swap" in values:
            mem.append(("memory", "memory.memsw.limit_in_bytes", str(values["memory_swap"])))
        if growing:
            mem.reverse()
        out += mem
        if "memory_reservation" in values:
            out.append(("memory", "memory.soft_limit_in_bytes", str(values["memory_reservation"])))
        if "cpu_period" in values:
            out.append(("cpu", "cpu.cfs_period_us", str(values["cpu_period"])))
        if "cpu_quota" in values:
            out.append(("cpu", "cpu.cfs_quota_us", str(values["cpu_quota"])))
        if "cpu_shares" in values:
            out.append(("cpu", "cpu.shares", str(values["cpu_shares"])))
    if "cpuset_cpus" in values:
        out.append(("cpuset", "cpuset.cpus", values["cpuset_cpus"]))
    if "cpuset_mems" in values:
        out.append(("cpuset", "cpuset.mems", values["cpuset_mems"]))
    if "pids" in values:
        out.append(("pids", "pids.max", _max(values["pids"])))
    return out


def weight_of_shares(shares: int) -> int:
    """runc's mapping of v1 cpu.shares onto v2 cpu.weight (the guest's, so host and guest agree)."""
    from runtime.agent.cgroups_v2 import cpu_weight

    return cpu_weight(max(2, int(shares)))


def _max(value: int, unlimited: str = "max") -> str:
    return unlimited if value < 0 else str(value)


def apply(path: str, values: dict[str, Any]) -> list[str]:
    """Write limits.host_limits' values into the container's host cgroup; returns what could not be written."""
    h, unified = _hierarchies(None, None)
    v2 = unified is not None and h.get("memory") == unified
    growing = False
    memory_now = None
    if not v2 and "memory" in values and "memory" in h:
        current = _read(os.path.join(h["memory"], path.strip("/"), "memory.limit_in_bytes")).strip()
        growing = values["memory"] < 0 or (current.isdigit() and values["memory"] > int(current))
    elif v2 and "memory_swap" in values and "memory" not in values and "memory" in h:
        current = _read(os.path.join(h["memory"], path.strip("/"), "memory.max")).strip()
        memory_now = int(current) if current.isdigit() else -1
    problems = []
    for controller, name, value in files(values, v2, growing, memory_now):
        if controller not in h:
            continue
        f = os.path.join(h[controller], path.strip("/"), name)
        if not os.path.exists(f):
            continue  # e.g. memsw without swap accounting
        try:
            _write(f, value)
        except OSError as e:
            problems.append(f"{name}={value}: {e.strerror}")
    return problems


def read(path: str, name: str, controller: str) -> str:
    d = hierarchies().get(controller)
    return _read(os.path.join(d, path.strip("/"), name)).strip() if d else ""


def remove(path: str, wait_s: float = 5.0) -> None:
    """After the container's processes are gone (runc removes it on delete too). A killed QEMU takes a moment
    to leave its cgroup: rmdir is retried until the cgroups are empty."""
    from runtime.runvm import wait

    dirs = [d for _k, d in _dirs(path)]
    wait.poll(lambda: not any(_read(os.path.join(d, "cgroup.procs")).strip() for d in dirs), wait_s, 0.02)
    for d in dirs:
        subs = [os.path.join(root, s) for root, subdirs, _f in os.walk(d) for s in subdirs]
        for sub in sorted(subs, key=lambda p: p.count("/"), reverse=True):
            with contextlib.suppress(OSError):
                os.rmdir(sub)
        with contextlib.suppress(OSError):
            os.rmdir(d)


def path_of(spec: dict[str, Any], container_id: str) -> str:
    return (spec.get("linux") or {}).get("cgroupsPath") or f"/runvm/{container_id}"


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def _write(path: str, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)
