"""`--cpus 0.5 --cpuset-cpus 0 --cpu-shares 512`: the cgroup values and affinity the container sees, the limits at
the container's cgroup on the host, and what the host charges a busy container under `--cpus 1`.

Programs size thread pools from nproc/affinity and read the CFS quota to find their CPU budget; the busy loop's
CPU use (from `docker stats`, the view operators have) shows whether the quota is enforced at all. A second
container (`--cpus 1`, two busy processes, on this host's CPUs) is measured from the host: the CPU time charged to
its cgroup (cpuacct.usage, or cpu.stat on cgroup v2) over a fixed window, against the limit. That figure is what
`docker stats`, the kubelet and billing read; it is kept in notes, the observation says at most or above the limit.
"""

from __future__ import annotations

import os
import time
from typing import Any

from harness import hostcgroup
from harness.context import Ctx, refusals
from harness.scenario import scenario
from tests.resources._support import ABSENT, cgroup_view, parse_pairs, status_field

CGROUP_FILES = {"cfs_quota_us": "cfs_quota_us", "cfs_period_us": "cfs_period_us", "shares": "cpu_shares",
                "cpuset_cpus": "cpuset_cpus"}
"""Observation key -> what the container reads of its cgroup (tests/resources/_support.CGROUP_VIEW, v1 or v2)."""
THROTTLED_BELOW = 0.6
"""A single busy thread uses ~1.0 CPU unthrottled and <= ~0.55 under a 0.5 quota (1 s window, 100 ms periods):
above 0.6 the container got a fifth more than its limit, which users see in `docker stats`."""
BUSY_CPUS = 1.0
BUSY_PROCS = 2
WINDOW_S = 3.0
"""The host-side measurement: two busy processes under --cpus 1 for 3 s (unthrottled they could use 2 CPUs here)."""
WARM_UP_S = 1.0
AT_MOST = 1.1
"""CFS lets a cgroup run its quota per 100 ms period: over 3 s runc stays within a period's worth of the limit;
10 % covers the window's edges. Unthrottled two busy processes are ~2.0 on an idle two-CPU host."""
NONE_BELOW = 0.1


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
    return "throttled (about 0.5 CPU)" if ratio < THROTTLED_BELOW else "above the limit"


def _host_busy(ctx: Ctx) -> str:
    """CPU time the host charges the --cpus 1 container's cgroup per second of a fixed window, against the limit."""
    procs = " ".join(["sh -c 'while :; do :; done' &"] * BUSY_PROCS)
    c = ctx.run(["sh", "-c", f"{procs} wait"], nano_cpus=int(BUSY_CPUS * 1e9))
    time.sleep(WARM_UP_S)
    first = hostcgroup.of_container(ctx.client, c.id)
    t0 = time.monotonic()
    time.sleep(WINDOW_S)
    last = hostcgroup.of_container(ctx.client, c.id)
    wall = time.monotonic() - t0
    load = os.getloadavg()[0]
    if first.cpu_usage_ns is None or last.cpu_usage_ns is None:
        ctx.notes["host_busy"] = {"unreadable": [*first.missing, *last.missing]}
        return "not readable"
    cpus = (last.cpu_usage_ns - first.cpu_usage_ns) / 1e9 / wall
    ctx.notes["host_busy"] = {"cpus_charged": round(cpus, 3), "window_s": round(wall, 2), "limit": BUSY_CPUS,
                              "busy_processes": BUSY_PROCS, "host_loadavg_1m": load,
                              "host_limit": hostcgroup.describe_cpus(last.cpu_quota_cpus)}
    with refusals("docker kill"):
        c.kill()
    if cpus < NONE_BELOW * BUSY_CPUS:
        return "almost none charged"
    return "at most the limit" if cpus <= AT_MOST * BUSY_CPUS else "above the limit"


@scenario("resources/cpus")
def test_cpus(ctx: Ctx) -> dict[str, Any]:
    c = ctx.run(["sh", "-c", "while :; do :; done"], nano_cpus=500_000_000, cpuset_cpus="0", cpu_shares=512)
    seen = parse_pairs(ctx.sh(c, cgroup_view(CGROUP_FILES)))
    status = ctx.sh(c, "cat /proc/self/status")
    nproc = ctx.sh(c, "nproc").strip()
    host = hostcgroup.of_container(ctx.client, c.id)
    ctx.notes["host_cgroup"] = host.record()
    obs = {
        **{name: seen.get(name, ABSENT) for name in CGROUP_FILES},
        "nproc": nproc,
        "cpus_allowed_list": status_field(status, "Cpus_allowed_list"),
        "busy_loop_cpu": _busy_loop_cpu(ctx, c),
        "host": {k: v for k, v in hostcgroup.limits(host).items() if k in ("cpus", "cpu_shares", "cpuset_cpus",
                                                                          "cgroup")},
    }
    with refusals("docker kill"):
        c.kill()  # its busy loop would compete with the measurement below
    obs["host_charged_cpu_under_cpus_1"] = _host_busy(ctx)
    return obs
