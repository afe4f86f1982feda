"""`--ulimit nofile=64:64` (and nproc, core, stack, memlock): the limits the process starts with, and nofile's bite.

Limits are read with the shell's `ulimit` builtin (getrlimit), which works where /proc/self/limits does not exist
(gVisor); the effect of nofile=64 is that descriptor 60 can be opened and descriptor 70 cannot.
"""

from __future__ import annotations

from typing import Any

import docker

from harness.context import Ctx
from harness.scenario import scenario
from tests.resources._support import parse_pairs

ULIMITS = {  # docker name: (busybox ulimit flag, its unit in bytes or 1, soft, hard)
    "nofile": ("n", 1, 64, 64),
    "nproc": ("u", 1, 100, 200),
    "core": ("c", 512, 0, 1024 * 1024),
    "stack": ("s", 1024, 4 * 1024 * 1024, 16 * 1024 * 1024),
    "memlock": ("l", 1024, 64 * 1024, 128 * 1024),
}
SCRIPT = "; ".join(
    [f"echo {name}=$(ulimit -S -{flag}):$(ulimit -H -{flag})" for name, (flag, *_) in ULIMITS.items()]
    + [f"(exec {fd}</dev/null) 2>/dev/null && echo fd{fd}=yes || echo fd{fd}=no" for fd in (60, 70)])


def _in_docker_units(name: str, value: str) -> str:
    """`soft:hard` as --ulimit takes them (bytes for core/stack/memlock), so the observation reads like the flag."""
    unit = ULIMITS[name][1]
    return ":".join(str(int(v) * unit) if v.isdigit() else v for v in value.split(":"))


@scenario("resources/ulimit")
def test_ulimit(ctx: Ctx) -> dict[str, Any]:
    limits = [docker.types.Ulimit(name=name, soft=soft, hard=hard) for name, (_, _, soft, hard) in ULIMITS.items()]
    res = ctx.run_to_exit(["sh", "-c", SCRIPT], timeout=60, ulimits=limits)
    seen = parse_pairs(res.stdout)
    return {
        "limits": {name: _in_docker_units(name, seen.get(name, "absent")) for name in ULIMITS},
        "fd_60_opens": seen.get("fd60") == "yes",
        "fd_70_opens": seen.get("fd70") == "yes",
    }
