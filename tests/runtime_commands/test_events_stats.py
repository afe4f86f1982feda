"""`docker stats`: memory usage follows what the workload holds and gives back, and a busy loop's CPU is above zero.

Docker reads the container's cgroup on the host. Where that cgroup holds a VMM or a sandbox, the numbers can
describe the runtime's machinery rather than the workload: constant whatever the workload does, never going down
when the workload frees memory, or zero when nothing is charged there. The oracle reads usage before and after the
workload takes 48 MiB, and again after it frees them, and compares each change with what the workload did; the
absolute figures (which include a VMM's own footprint) are kept as evidence.
"""

from __future__ import annotations

from typing import Any

from harness.context import Ctx, refusals
from harness.scenario import scenario
from harness.waiting import poll
from tests.runtime_commands._support import stable_refusals

MiB = 1024 * 1024
HELD_MIB = 48
BAND_MIB = (40, 72)
"""What counts as following the 48 MiB taken (or freed): accounting granularity below, up to half again above."""


def _vs_band(change: int) -> str:
    return "below" if change < BAND_MIB[0] * MiB else "above" if change > BAND_MIB[1] * MiB else "inside"


@scenario("runtime_commands/events-stats")
@stable_refusals
def test_events_stats(ctx: Ctx) -> dict[str, Any]:
    c = ctx.run(["sh", "-c", "echo busy; while :; do :; done"])
    busy = poll(lambda: ctx.logs(c, stderr=False), lambda out: "busy" in out, timeout=20)
    ctx.notes["busy_loop_started"] = busy.note()
    if busy.timed_out:
        return {"busy_loop_started": "not within 20 s"}
    before, _ = _sample(ctx, c)
    # /dev/shm is tmpfs: its pages are charged to the container's memory cgroup and stay until removed.
    held = ctx.exec(c, f"dd if=/dev/zero of=/dev/shm/hold bs=1M count={HELD_MIB} 2>/dev/null && echo held")
    after, cpu_pct = _sample(ctx, c)
    freed = ctx.exec(c, "rm /dev/shm/hold && echo freed")
    after_free, _ = _sample(ctx, c)
    growth, drop = after - before, after - after_free
    ctx.notes.update({"usage_before_mib": round(before / MiB, 1), "usage_after_mib": round(after / MiB, 1),
                      "usage_after_free_mib": round(after_free / MiB, 1), "cpu_percent": round(cpu_pct, 1)})
    return {
        "workload_held_mib": HELD_MIB if "held" in held.stdout else 0,
        "workload_freed": "freed" in freed.stdout,
        "growth_band_mib": list(BAND_MIB),
        "growth_vs_band": _vs_band(growth),
        # Freed tmpfs pages are uncharged at once under runc; a usage that stays up is what users see as a leak.
        "drop_after_free_vs_band": _vs_band(drop),
        "cpu_percent_above_zero": cpu_pct > 0,
    }


def _sample(ctx: Ctx, c: Any) -> tuple[int, float]:
    """(memory usage as the docker CLI shows it on cgroup v1, CPU percent over the daemon's 1 s sample)."""
    with refusals("docker stats"):
        # Without one-shot the daemon samples twice, a second apart, so precpu_stats is filled in.
        s = ctx.client.api.stats(c.id, stream=False)
    mem = s.get("memory_stats", {})
    usage = mem.get("usage", 0) - mem.get("stats", {}).get("total_inactive_file", 0)
    cpu, pre = s.get("cpu_stats", {}), s.get("precpu_stats", {})
    cpu_delta = cpu.get("cpu_usage", {}).get("total_usage", 0) - pre.get("cpu_usage", {}).get("total_usage", 0)
    sys_delta = cpu.get("system_cpu_usage", 0) - pre.get("system_cpu_usage", 0)
    return usage, (100.0 * cpu_delta / sys_delta * cpu.get("online_cpus", 1) if sys_delta > 0 else 0.0)
