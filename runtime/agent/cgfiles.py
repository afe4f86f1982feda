"""What the guest's v1 and v2 cgroup code share: where the hierarchy is, the template's spare cgroup, and reading
and writing control files."""

from __future__ import annotations

ROOT = "/sys/fs/cgroup"
SPARE = ".runvm-spare"
SPARE_PARENT = "/docker"
"""Docker's cgroupfs parent. The template makes the next container's cgroup there ahead of time, in every
hierarchy (a v1 mkdir allocates each controller's state: tens of milliseconds under TCG for all of them); a
create under that parent renames it, anywhere else it is left unused."""


def read(path: str) -> str:
    """A control file's text; "" when it does not exist (a controller or knob this kernel lacks)."""
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def write(path: str, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


def keyed(path: str) -> dict[str, str]:
    """A flat-keyed file (memory.events, cgroup.events, cpu.stat) as key -> value."""
    return dict(ln.split(None, 1) for ln in read(path).splitlines() if " " in ln)
