"""`--cpus 0.5 --cpuset-cpus 0 --cpu-shares 512`: the cgroup values and affinity the container sees, and throttling.

Programs size thread pools from nproc/affinity and read the CFS quota to find their CPU budget; the busy loop's
CPU use (from `docker stats`, the view operators have) shows whether the quota is enforced at all.
"""

from __future__ import annotations

from typing import Any

from harness.context import Ctx, refusals
from harness.scenario import scenario
from tests.resources._support import ABSENT, parse_pairs, read_files, status_field

CGROUP_FILES = {
    "cfs_quota_us": "/sys/fs/cgroup/cpu/cpu.cfs_quota_us",
    "cfs_period_us": "/sys/fs/cgroup/cpu/cpu.cfs_period_us",
    "shares": "/sys/fs/cgroup/cpu/cpu.shares",
    "cpuset_cpus": "/sys/fs/cgroup/cpuset/cpuset.cpus",
}
THROTTLED_BELOW = 0.75
"""A single busy thread uses ~1.0 CPU unthrottled and <= ~0.55 under a 0.5 quota (1 s window, 100 ms periods)."""


def _busy_loop_cpu(ctx: Ctx, c: Any) -> str:
    """CPU used by the busy loop over docker's ~1 s stats window, bucketed (host load only lowers it)."""
    with refusals("docker stats"):
        s = c.stats(stream=False)
    cpu, pre = s.get("cpu_stats") or {}, s.get("precpu_stats") or {}
    used = (cpu.get("cpu_usage") or {}).get("total_usage", 0) - (pre.get("cpu_usage") or {}).get("total_usage", 0)
    system = cpu.get("system_cpu_usage", 0) - pre.get("system_cpu_usage", 0)
    online = cpu.get("online_cpus") or len((cpu.get("cpu_usage") or {}).get("percpu_usage") or []) or 1
    if not pre.get("system_cpu_usage") or system <= 0:
        return "unmeasured"
    ratio = used / (system / online)
    ctx.notes["busy_loop_cpu_ratio"] = round(ratio, 3)
    return "throttled (about 0.5 CPU)" if ratio < THROTTLED_BELOW else "unthrottled"


@scenario("resources/cpus")
def test_cpus(ctx: Ctx) -> dict[str, Any]:
    c = ctx.run(["sh", "-c", "while :; do :; done"], nano_cpus=500_000_000, cpuset_cpus="0", cpu_shares=512)
    seen = parse_pairs(ctx.sh(c, read_files(CGROUP_FILES)))
    status = ctx.sh(c, "cat /proc/self/status")
    nproc = ctx.sh(c, "nproc").strip()
    return {
        **{name: seen.get(name, ABSENT) for name in CGROUP_FILES},
        "nproc": nproc,
        "cpus_allowed_list": status_field(status, "Cpus_allowed_list"),
        "busy_loop_cpu": _busy_loop_cpu(ctx, c),
    }
