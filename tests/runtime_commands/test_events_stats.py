"""`docker stats`: memory usage close to what the workload holds, and a busy loop's CPU above zero.

Docker reads the container's cgroup on the host. Where that cgroup holds a VMM or a sandbox, the numbers describe
the runtime's machinery rather than the workload: too large, or zero when nothing is charged there.
"""

from __future__ import annotations

from typing import Any

from harness.context import Ctx, refusals
from harness.scenario import scenario
from tests.runtime_commands._support import poll, stable_refusals

MiB = 1024 * 1024
HELD_MIB = 48
BAND_MIB = (40, 96)
"""What counts as close to the 48 MiB held: accounting granularity below, runtime overhead up to twice above."""


@scenario("runtime_commands/events-stats")
@stable_refusals
def test_events_stats(ctx: Ctx) -> dict[str, Any]:
    # /dev/shm is tmpfs: its pages are charged to the container's memory cgroup and stay until removed.
    c = ctx.run(["sh", "-c", f"dd if=/dev/zero of=/dev/shm/hold bs=1M count={HELD_MIB} 2>/dev/null; "
                 "echo held; while :; do :; done"])
    held = poll(lambda: ctx.logs(c, stderr=False), lambda out: "held" in out, timeout=20)
    with refusals("docker stats"):
        # Without one-shot the daemon samples twice, a second apart, so precpu_stats is filled in.
        s = ctx.client.api.stats(c.id, stream=False)
    mem = s.get("memory_stats", {})
    # What the docker CLI shows on cgroup v1: usage minus inactive file cache.
    usage = mem.get("usage", 0) - mem.get("stats", {}).get("total_inactive_file", 0)
    cpu, pre = s.get("cpu_stats", {}), s.get("precpu_stats", {})
    cpu_delta = cpu.get("cpu_usage", {}).get("total_usage", 0) - pre.get("cpu_usage", {}).get("total_usage", 0)
    sys_delta = cpu.get("system_cpu_usage", 0) - pre.get("system_cpu_usage", 0)
    cpu_pct = 100.0 * cpu_delta / sys_delta * cpu.get("online_cpus", 1) if sys_delta > 0 else 0.0
    ctx.notes.update({"usage_mib": round(usage / MiB, 1), "limit_mib": round(mem.get("limit", 0) / MiB),
                      "cpu_percent": round(cpu_pct, 1), "pids": s.get("pids_stats", {}).get("current")})
    return {
        "workload_held_mib": HELD_MIB if "held" in held else 0,
        "usage_band_mib": list(BAND_MIB),
        "usage_vs_band": "below" if usage < BAND_MIB[0] * MiB else "above" if usage > BAND_MIB[1] * MiB else "inside",
        "cpu_percent_above_zero": cpu_pct > 0,
    }
