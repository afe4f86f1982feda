"""`docker update` on a running container: each new limit takes effect where the workload runs, and on the host.

Runc rewrites the container's cgroup; a sandbox or VM runtime must apply the change to what the workload sees.
The oracle updates memory(+swap), CPU quota/period and shares, cpuset and pids one after another and, after each,
reads the cgroup files inside and provokes the limit: an allocation past the new memory limit, forks past the new
pids limit, the affinity of a new process. It also reads the container's cgroup on the host (what `docker stats`,
cAdvisor and the kubelet see) and what `docker stats` reports as the memory and pids limits.
"""

from __future__ import annotations

from typing import Any

from docker.models.containers import Container

from harness import hostcgroup
from harness.context import Ctx, refusals
from harness.scenario import scenario
from tests.resources._support import cgroup_view, parse_pairs
from tests.runtime_commands._support import stable_refusals

MiB = 1024 * 1024


def cgroup_files(ctx: Ctx, c: Container, *meanings: str) -> dict[str, str]:
    """The container's own view of its cgroup limits, by meaning, on cgroup v1 or v2 (tests/resources/_support.py
    CGROUP_VIEW); 'absent' for what it cannot see."""
    return parse_pairs(ctx.exec(c, cgroup_view({m: m for m in meanings})).stdout)


def as_mib(value: str) -> int | str:
    return int(value) // MiB if value.isdigit() else value


def alloc(ctx: Ctx, c: Container, mib: int) -> str:
    """Allocate a buffer of `mib` MiB in a new process: 'ok', 'killed' (SIGKILL, the OOM killer) or the exit code."""
    code = ctx.exec(c, f"dd if=/dev/zero of=/dev/null bs={mib}M count=1 2>/dev/null").code
    return {0: "ok", 137: "killed"}.get(code, f"exit {code}")


def host(ctx: Ctx, c: Container, *keys: str) -> dict[str, str]:
    """The container's limits in its host cgroup, by meaning (see harness/hostcgroup.py); raw values in notes."""
    reading = hostcgroup.of_container(ctx.client, c.id)
    ctx.notes.setdefault("host_cgroup", []).append(reading.record())
    limits = hostcgroup.limits(reading)
    return {k: limits[k] for k in keys} if reading.found else limits


def stats_limits(ctx: Ctx, c: Container) -> dict[str, str]:
    """The memory and pids limits `docker stats` reports (it reads the host cgroup)."""
    with refusals("docker stats"):
        s = ctx.client.api.stats(c.id, stream=False, one_shot=True)
    return {"memory": hostcgroup.describe_limit(hostcgroup.stats_memory(s)[0]),
            "pids": hostcgroup.describe_count(hostcgroup.stats_pids(s)[0])}


FLAGS = {"mem_limit": "memory", "memswap_limit": "memory-swap"}


def update(ctx: Ctx, c: Container, **kwargs: Any) -> None:
    """docker update through the SDK, logged and refused under the CLI's flag names."""
    flags = {FLAGS.get(k, k.replace("_", "-")): v for k, v in kwargs.items()}
    ctx.evidence.command(f"docker update {' '.join(f'--{k}={v}' for k, v in flags.items())} {c.name}")
    with refusals("docker update " + " ".join(f"--{k}" for k in flags)):
        c.update(**kwargs)


# Forks in a loop until the shell cannot fork (busybox sh then exits 2), printing how many it started. The
# children must not hold the exec's stdout, or the exec would last as long as they do.
FORKS = ("i=0; while [ $i -lt 100 ]; do sleep 5 </dev/null >/dev/null 2>&1 & i=$((i+1)); echo $i; done")


@scenario("runtime_commands/update")
@stable_refusals
def test_update(ctx: Ctx) -> dict[str, Any]:
    c = ctx.run(["sleep", "1000"], mem_limit="256m", memswap_limit="256m")
    obs: dict[str, Any] = {"before": {"alloc_100m": alloc(ctx, c, 100),
                                      "host": host(ctx, c, "memory", "memory_swap", "cpus", "pids"),
                                      "docker_stats": stats_limits(ctx, c)}}

    update(ctx, c, mem_limit="64m", memswap_limit="64m")
    f = cgroup_files(ctx, c, "memory_limit", "memsw_limit")
    obs["memory"] = {
        "limit_mib": as_mib(f.get("memory_limit", "absent")),
        "memsw_limit_mib": as_mib(f.get("memsw_limit", "absent")),
        "alloc_32m": alloc(ctx, c, 32),
        "alloc_100m": alloc(ctx, c, 100),
        "container_running": ctx.inspect(c)["State"]["Running"],
        "host": host(ctx, c, "memory", "memory_swap"),
        "docker_stats_limit": stats_limits(ctx, c)["memory"],
    }

    update(ctx, c, cpu_quota=50000, cpu_period=100000, cpu_shares=512)
    f = cgroup_files(ctx, c, "cfs_quota_us", "cfs_period_us", "cpu_shares")
    obs["cpu"] = {"quota_us": f.get("cfs_quota_us"), "period_us": f.get("cfs_period_us"),
                  "shares": f.get("cpu_shares"), "host": host(ctx, c, "cpus", "cpu_shares")}

    update(ctx, c, cpuset_cpus="0")
    f = cgroup_files(ctx, c, "cpuset_cpus")
    obs["cpuset"] = {
        "cpus": f.get("cpuset_cpus"),
        "nproc_new_process": ctx.exec(c, "nproc").stdout.strip(),
        "pid1_affinity": ctx.exec(c, "taskset -p 1").stdout.strip().rsplit(" ", 1)[-1],
        "host": host(ctx, c, "cpuset_cpus"),
    }

    ctx.cli("update", "--pids-limit", "20", c.id)
    f = cgroup_files(ctx, c, "pids_max")
    pids_host = {**host(ctx, c, "pids"), "docker_stats_limit": stats_limits(ctx, c)["pids"]}
    forks = ctx.exec(c, FORKS)
    started = [int(n) for n in forks.stdout.split() if n.isdigit()]
    obs["pids"] = {
        "max": f.get("pids_max"),
        # 20 = sleep 1000 + the exec'd sh + 18 children under runc.
        "forks_before_refusal": started[-1] if started and "can't fork" in forks.stderr else "no refusal",
        "host": pids_host,
    }
    return obs
