"""The container's cgroup on the host (linux.cgroupsPath, e.g. /docker/<id>): the vm-shim and QEMU live in it,
so containerd's OOM watch and `docker stats` find the VM's usage there. Limits are enforced in the guest;
on the host only the weight and the cpuset apply (a quota would slow the whole VM, kernel and agent included)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

TYPE_CHECKING = False  # typing costs ~9 ms per runvm invocation
if TYPE_CHECKING:
    from typing import Any

ROOT = Path("/sys/fs/cgroup")


def layout() -> list[dict[str, str]]:
    """The host's cgroup mounts below /sys/fs/cgroup, for the guest to mirror."""
    out = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        sep = fields.index("-")
        fstype, point, super_opts = fields[sep + 1], fields[4], fields[sep + 3]
        if fstype not in ("cgroup", "cgroup2") or not point.startswith(str(ROOT) + "/"):
            continue
        opts = [o for o in super_opts.split(",") if o not in ("rw", "ro")]
        out.append({"dir": point[len(str(ROOT)) + 1:], "type": fstype, "options": ",".join(opts)})
    return out


def _dirs(path: str) -> list[Path]:
    rel = path.strip("/")
    return [ROOT / e["dir"] / rel for e in layout() if e["type"] == "cgroup"]


def place(path: str, pid: int, resources: dict[str, Any]) -> None:
    """Create the cgroup in every v1 hierarchy and move pid into it (QEMU, forked later, follows)."""
    cpu = resources.get("cpu") or {}
    for d in _dirs(path):
        d.mkdir(parents=True, exist_ok=True)
        if d.parts[4] == "cpuset":
            _inherit_cpuset(d)
            if cpu.get("cpus"):
                with contextlib.suppress(OSError):
                    (d / "cpuset.cpus").write_text(cpu["cpus"])
        if d.parts[4] == "cpu" and cpu.get("shares"):
            with contextlib.suppress(OSError):
                (d / "cpu.shares").write_text(str(cpu["shares"]))
        with contextlib.suppress(OSError):
            (d / "cgroup.procs").write_text(str(pid))


def _inherit_cpuset(d: Path) -> None:
    chain = []
    cur = d
    while cur != ROOT / "cpuset" and cur != cur.parent:
        chain.append(cur)
        cur = cur.parent
    for node in reversed(chain):
        for f in ("cpuset.cpus", "cpuset.mems"):
            with contextlib.suppress(OSError):
                if not (node / f).read_text().strip():
                    (node / f).write_text((node.parent / f).read_text().strip())


def remove(path: str, wait_s: float = 5.0) -> None:
    """After the container's processes are gone (runc removes it on delete too). A killed QEMU takes a moment
    to leave its cgroup: rmdir is retried until the cgroups are empty."""
    import time

    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline and any(
            (d / "cgroup.procs").exists() and (d / "cgroup.procs").read_text().strip() for d in _dirs(path)):
        time.sleep(0.02)
    for d in _dirs(path):
        for sub in sorted((p for p in d.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
            with contextlib.suppress(OSError):
                os.rmdir(sub)
        with contextlib.suppress(OSError):
            os.rmdir(d)


def path_of(spec: dict[str, Any], container_id: str) -> str:
    return (spec.get("linux") or {}).get("cgroupsPath") or f"/runvm/{container_id}"
