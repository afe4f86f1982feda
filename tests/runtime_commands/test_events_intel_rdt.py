"""Intel RDT statistics: a runc-style runtime's `events --stats` carries them where the host exposes resctrl.

The oracle always runs the container and looks for RDT data in `docker stats` and in the runtime's own
`events --stats` (what containerd's runc-style shims read). Where the host has no resctrl (the registry declares
it) runc reports none, its baseline is unavailable, and each target is judged on whether it reports them.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from harness.context import Ctx, refusals
from harness.documented import Check
from harness.scenario import scenario
from tests.runtime_commands._support import stable_refusals

RDT_FLAGS = {"rdt_a", "cat_l3", "cat_l2", "cdp_l3", "mba", "cqm", "cqm_llc", "cqm_occup_llc", "cqm_mbm_total",
             "cqm_mbm_local"}


def host_resctrl() -> dict[str, Any]:
    """Whether the kernel knows resctrl, where it is mounted, and which RDT features the CPU advertises."""
    filesystems = Path("/proc/filesystems").read_text()
    mounts = [line.split() for line in Path("/proc/mounts").read_text().splitlines()]
    flags: set[str] = set()
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            flags |= set(line.split(":", 1)[1].split()) & RDT_FLAGS
    return {
        "kernel_has_resctrl": any(line.split()[-1] == "resctrl" for line in filesystems.splitlines() if line),
        "mounted_at": next((m[1] for m in mounts if len(m) > 2 and m[2] == "resctrl"), None),
        "cpu_rdt_flags": sorted(flags),
    }


def _mentions_rdt(value: Any) -> bool:
    """Any non-empty key mentioning RDT anywhere in a stats document."""
    if isinstance(value, dict):
        return any(("rdt" in str(k).lower() and v) or _mentions_rdt(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_mentions_rdt(v) for v in value)
    return False


def runtime_events_rdt(ctx: Ctx, container_id: str) -> bool | None:
    """RDT data in `<runtime> events --stats` against dockerd's runtime state (None: the runtime cannot say)."""
    with refusals("docker info"):
        rt = ctx.client.info().get("Runtimes", {}).get(ctx.runtime, {})
    if not rt.get("path"):
        return None
    # dockerd gives every runc-style runtime the runc shim's state root, keyed by the containerd namespace.
    for root in dict.fromkeys([f"/var/run/docker/runtime-{ctx.runtime}/moby", "/var/run/docker/runtime-runc/moby"]):
        if not Path(root).is_dir():
            continue
        cmd = [rt["path"], *rt.get("runtimeArgs", []), "--root", root, "events", "--stats", container_id]
        ctx.evidence.command(" ".join(cmd))
        for _ in range(2):
            try:
                proc = subprocess.run(cmd, capture_output=True, text=True, timeout=15, check=False)
                doc = json.loads(proc.stdout.splitlines()[0])
            except (OSError, subprocess.TimeoutExpired, IndexError, ValueError) as e:
                ctx.notes.setdefault("runtime_events_failures", []).append(f"{root}: {e!r}")
                continue
            return _mentions_rdt(doc.get("data", doc))
    return None


DOCUMENTED = [Check("the runtime's events --stats reports Intel RDT data", lambda o: o["runtime_events_rdt"] is True)]
"""runc's `events --stats` includes an intel_rdt section (L3 cache, memory bandwidth) where RDT is enabled."""


@scenario("runtime_commands/events-intel-rdt", documented=DOCUMENTED)
@stable_refusals
def test_events_intel_rdt(ctx: Ctx) -> dict[str, Any]:
    host = host_resctrl()
    ctx.notes["host"] = host
    c = ctx.run(["sleep", "600"])
    with refusals("docker stats"):
        stats = ctx.client.api.stats(c.id, stream=False, one_shot=True)
    return {
        "resctrl_mounted": host["mounted_at"] is not None,
        "docker_stats_rdt": _mentions_rdt(stats),
        "runtime_events_rdt": runtime_events_rdt(ctx, c.id),
    }
