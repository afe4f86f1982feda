"""A container's cgroup as the host's tools read it: the limit and usage files at the container's cgroupsPath.

Docker asks the runtime to put the container in a cgroup (OCI linux.cgroupsPath): with the cgroupfs driver
`<parent>/<id>` (parent `/docker` by default), with the systemd driver `<slice>:docker:<id>`, i.e.
`system.slice/docker-<id>.scope`. Where that path lives depends on the host's layout, found from
/proc/self/mountinfo: on cgroup v1 each controller has its own hierarchy (`/sys/fs/cgroup/memory/docker/<id>`,
possibly shared, `cpu,cpuacct`), on cgroup v2 one unified hierarchy holds `memory.max`, `cpu.max`, `pids.max`.
`docker stats`, cAdvisor and the kubelet read these same files; oracles read them to compare what runc leaves on
the host with what a runtime under test leaves there. Values come back by meaning (bytes or None for unlimited,
CPUs as a float), so v1 and v2 hosts are described alike.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MOUNTINFO = Path("/proc/self/mountinfo")
UNLIMITED_V1 = 1 << 62
"""cgroup v1 writes "no limit" as the largest page-aligned signed 64-bit value; anything this large is unlimited."""
CONTROLLERS = ("memory", "cpu", "cpuacct", "cpuset", "pids")
MiB = 1 << 20


@dataclass(frozen=True)
class Layout:
    """Where each controller's hierarchy is mounted and its root (the mount's root inside the hierarchy)."""

    version: int
    """1 when the memory controller is on a v1 hierarchy (legacy or hybrid host), 2 on a unified host."""
    mounts: dict[str, tuple[Path, str]] = field(default_factory=dict)
    """controller -> (mount point, the hierarchy path mounted there); on v2 every controller maps to the one mount."""


def layout(mountinfo: str | None = None, controllers: set[str] | None = None) -> Layout:
    """The host's cgroup layout from /proc/self/mountinfo (or the given text and v2 controllers, for tests)."""
    text = MOUNTINFO.read_text() if mountinfo is None else mountinfo
    v1: dict[str, tuple[Path, str]] = {}
    unified: tuple[Path, str] | None = None
    for line in text.splitlines():
        fields = line.split()
        if "-" not in fields:
            continue
        sep = fields.index("-")
        if len(fields) < sep + 4:
            continue
        root, point, fstype, options = fields[3], Path(fields[4]), fields[sep + 1], fields[sep + 3]
        if fstype == "cgroup":
            for opt in options.split(","):
                if opt in CONTROLLERS:
                    v1.setdefault(opt, (point, root))
        elif fstype == "cgroup2" and unified is None:
            unified = (point, root)
    if "memory" in v1 or unified is None:
        return Layout(1, v1)
    if controllers is None:
        controllers = set(_read(unified[0] / "cgroup.controllers").split())
    # v2 has no cpuacct: its usage is cpu.stat, always present.
    mounts = {c: unified for c in CONTROLLERS if c in controllers or c in ("cpu", "cpuacct")}
    return Layout(2, {**mounts, **{c: m for c, m in v1.items() if c not in mounts}})


def cgroups_path(container_id: str, *, driver: str = "cgroupfs", parent: str = "") -> str:
    """The cgroupsPath Docker gives the runtime, as a path inside the hierarchy ("/docker/<id>")."""
    if driver == "systemd":
        slice_ = parent or "system.slice"
        return "/" + "/".join([*_slice_dirs(slice_), f"docker-{container_id}.scope"])
    return "/" + "/".join(p for p in [*(parent or "/docker").split("/"), container_id] if p)


def _slice_dirs(name: str) -> list[str]:
    """systemd nests `a-b-c.slice` in `a.slice/a-b.slice/a-b-c.slice`."""
    if name in ("-.slice", ""):
        return []
    stem = name.removesuffix(".slice")
    parts = stem.split("-")
    return [("-".join(parts[: i + 1])) + ".slice" for i in range(len(parts))]


def directory(lay: Layout, controller: str, path: str) -> Path | None:
    """The directory of cgroupsPath `path` in `controller`'s hierarchy, or None when the host lacks it."""
    if controller not in lay.mounts:
        return None
    point, root = lay.mounts[controller]
    rel = path
    if root not in ("/", "") and (path == root or path.startswith(root.rstrip("/") + "/")):
        rel = path[len(root.rstrip("/")):]
    return point / rel.strip("/")


@dataclass(frozen=True)
class Reading:
    """What the host's files say. None: unlimited (for limits) or not readable (see `missing`)."""

    memory_limit: int | None = None
    memory_swap_limit: int | None = None
    """Memory plus swap (v1's memsw; on v2 memory.max + memory.swap.max)."""
    cpu_quota_cpus: float | None = None
    """quota / period in CPUs; None: no quota."""
    cpu_shares: int | None = None
    """v1 cpu.shares."""
    cpu_weight: int | None = None
    """v2 cpu.weight, as it is: runc's mapping from shares changed in 1.3 (linear before, log-quadratic since),
    so no inverse names the shares a weight came from."""
    cpuset_cpus: str | None = None
    pids_max: int | None = None
    memory_usage: int | None = None
    memory_peak: int | None = None
    """v1 memory.max_usage_in_bytes, v2 memory.peak (kernels from 5.19)."""
    oom_kills: int | None = None
    """OOM kills the kernel counted in this cgroup (v1 memory.oom_control oom_kill, v2 memory.events oom_kill)."""
    cpu_usage_ns: int | None = None
    pids_current: int | None = None
    version: int = 1
    found: bool = True
    """The container's cgroup directory exists in the memory (or first available) hierarchy."""
    missing: tuple[str, ...] = ()
    """Files that could not be read."""
    dirs: dict[str, str] = field(default_factory=dict)

    def record(self) -> dict[str, Any]:
        """Raw evidence for ctx.notes."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def _int(text: str) -> int | None:
    return int(text) if text.lstrip("-").isdigit() else None


def _limit_v1(text: str) -> int | None:
    n = _int(text)
    return None if n is None or n >= UNLIMITED_V1 or n < 0 else n


def _limit_v2(text: str) -> int | None:
    return None if text in ("max", "") else _int(text)


def _keyed(text: str, key: str) -> int | None:
    for line in text.splitlines():
        k, _, v = line.partition(" ")
        if k == key:
            return _int(v.strip())
    return None


def read(container_id: str, *, driver: str = "cgroupfs", parent: str = "", lay: Layout | None = None) -> Reading:
    """Read the container's limits and usage on the host, as `docker stats` and other host tools see them."""
    lay = lay or layout()
    path = cgroups_path(container_id, driver=driver, parent=parent)
    dirs = {c: d for c in CONTROLLERS if (d := directory(lay, c, path)) is not None}
    missing: list[str] = []

    def get(controller: str, name: str) -> str:
        d = dirs.get(controller)
        text = _read(d / name) if d is not None else ""
        if not text:
            missing.append(f"{controller}/{name}")
        return text

    probe = dirs.get("memory") or next(iter(dirs.values()), None)
    found = probe is not None and probe.is_dir()
    values: dict[str, Any] = {}
    if lay.version == 1:
        values["memory_limit"] = _limit_v1(get("memory", "memory.limit_in_bytes"))
        values["memory_swap_limit"] = _limit_v1(get("memory", "memory.memsw.limit_in_bytes"))
        values["memory_usage"] = _int(get("memory", "memory.usage_in_bytes"))
        values["memory_peak"] = _int(get("memory", "memory.max_usage_in_bytes"))
        values["oom_kills"] = _keyed(get("memory", "memory.oom_control"), "oom_kill")
        quota, period = _int(get("cpu", "cpu.cfs_quota_us")), _int(get("cpu", "cpu.cfs_period_us"))
        values["cpu_quota_cpus"] = quota / period if quota and quota > 0 and period else None
        values["cpu_shares"] = _int(get("cpu", "cpu.shares"))
        values["cpu_usage_ns"] = _int(get("cpuacct", "cpuacct.usage"))
        values["pids_max"] = _limit_v2(get("pids", "pids.max"))
    else:
        mem = _limit_v2(get("memory", "memory.max"))
        swap_text = get("memory", "memory.swap.max")
        swap = _limit_v2(swap_text)
        values["memory_limit"] = mem
        values["memory_swap_limit"] = None if mem is None or (swap is None and swap_text) else mem + (swap or 0)
        values["memory_usage"] = _int(get("memory", "memory.current"))
        values["memory_peak"] = _int(get("memory", "memory.peak"))
        values["oom_kills"] = _keyed(get("memory", "memory.events"), "oom_kill")
        quota_s, _, period_s = get("cpu", "cpu.max").partition(" ")
        q, p = _int(quota_s), _int(period_s)
        values["cpu_quota_cpus"] = q / p if q and p else None
        values["cpu_weight"] = _int(get("cpu", "cpu.weight"))
        usec = _keyed(get("cpu", "cpu.stat"), "usage_usec")
        values["cpu_usage_ns"] = usec * 1000 if usec is not None else None
        values["pids_max"] = _limit_v2(get("pids", "pids.max"))
    values["cpuset_cpus"] = get("cpuset", "cpuset.cpus" if lay.version == 1 else "cpuset.cpus.effective") or None
    values["pids_current"] = _int(get("pids", "pids.current"))
    return Reading(**values, version=lay.version, found=found, missing=tuple(missing),
                   dirs={c: str(d) for c, d in dirs.items()})


def reader(client: Any, container_id: str) -> Callable[[], Reading]:
    """read() for a container of `client`'s daemon (its cgroup driver, the container's --cgroup-parent), as a
    function to call again: the daemon is asked once, the files are read on every call."""
    driver = str(client.info().get("CgroupDriver") or "cgroupfs")
    attrs = client.api.inspect_container(container_id)
    parent = attrs["HostConfig"].get("CgroupParent") or _default_parent(int(attrs["State"].get("Pid") or 0),
                                                                        container_id, driver)
    lay = layout()
    return lambda: read(container_id, driver=driver, parent=parent, lay=lay)


def _default_parent(pid: int, container_id: str, driver: str) -> str:
    """The daemon's own default parent (a daemon started with --cgroup-parent), read from where the container's
    first process is; "" (Docker's usual default) when that cannot be seen."""
    if not pid or driver == "systemd":
        return ""
    try:
        lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    except OSError:
        return ""
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if (controllers == "" or "pids" in controllers.split(",")) and path.rstrip("/").endswith("/" + container_id):
            return path.rstrip("/")[: -len(container_id) - 1] or ""
    return ""


def of_container(client: Any, container_id: str) -> Reading:
    """One read() of a container of `client`'s daemon."""
    return reader(client, container_id)()


# --- meanings ---------------------------------------------------------------------------------------------------
def host_ram_bytes() -> int:
    """The host's RAM as Docker reports an unlimited container's limit (sysinfo's totalram, i.e. MemTotal)."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def describe_limit(value: int | None) -> str:
    """A byte limit by meaning: "64 MiB", "unlimited", or "the host's RAM" (what Docker shows for no limit)."""
    if value is None or value >= UNLIMITED_V1:
        return "unlimited"
    ram = host_ram_bytes()
    if abs(value - ram) <= 16 * MiB:
        return "the host's RAM"
    return f"{value // MiB} MiB" if value % MiB == 0 else f"{value / MiB:.1f} MiB"


def describe_cpus(cpus: float | None) -> str:
    if cpus is None:
        return "unlimited"
    return f"{cpus:g} CPU"


def describe_count(value: int | None) -> str:
    return "unlimited" if value is None else str(value)


def limits(r: Reading) -> dict[str, Any]:
    """The limits of a reading by meaning, for an observation (usage left out: it is noise until bucketed)."""
    if not r.found:
        return {"cgroup": "not found at the container's cgroupsPath"}
    return {
        "memory": describe_limit(r.memory_limit),
        "memory_swap": describe_limit(r.memory_swap_limit),
        "cpus": describe_cpus(r.cpu_quota_cpus),
        "cpu_shares": f"weight {r.cpu_weight}" if r.cpu_weight is not None else describe_count(r.cpu_shares),
        "cpuset_cpus": r.cpuset_cpus or "absent",
        "pids": describe_count(r.pids_max),
    }


def stats_memory(stats: dict[str, Any]) -> tuple[int | None, int | None]:
    """(limit, usage) from a Docker stats document, usage as the docker CLI shows it (less inactive file pages)."""
    mem = stats.get("memory_stats") or {}
    if "usage" not in mem:
        return mem.get("limit"), None
    detail = mem.get("stats") or {}
    cache = detail.get("total_inactive_file", detail.get("inactive_file", 0))
    usage = int(mem["usage"])
    return mem.get("limit"), usage - int(cache) if cache < usage else usage


def stats_pids(stats: dict[str, Any]) -> tuple[int | None, int | None]:
    """(limit, current) from a Docker stats document; a limit of 0 or absent means unlimited."""
    p = stats.get("pids_stats") or {}
    return (p.get("limit") or None), p.get("current")
