"""`--pids-limit 16`: the container cannot hold more than 16 tasks; the fork past the limit fails with EAGAIN; and
the host's tools see the limit and the container's tasks.

The container's shell starts 24 background sleeps from a subshell; when a fork fails, busybox's shell gives up on
that subshell, and the parent counts the tasks that made it with builtins only (no fork left to spare). Tasks, not
`sleep`s: a child may still be between fork and exec when it is counted. The shell then stays up (exec sleep), so
the host side is read with the tasks still held: pids.max and pids.current at the container's cgroupsPath, and
the limit and count `docker stats` reports. Nothing is exec'd into the full container: its output is its log.
"""

from __future__ import annotations

from typing import Any

from harness import hostcgroup
from harness.context import Ctx, refusals
from harness.scenario import scenario
from harness.waiting import poll
from tests.resources._support import ABSENT, cgroup_view, parse_pairs

LIMIT = 16
WANTED = 24
SCRIPT = cgroup_view({"pids_max": "pids_max"}) + f"""
( i=0; while [ $i -lt {WANTED} ]; do sleep 100 & i=$((i + 1)); done ) 2>/tmp/fork-errors
n=0
for p in /proc/[0-9]*; do [ "${{p#/proc/}}" != "$$" ] && n=$((n + 1)); done
err=none
while read -r line; do case "$line" in *fork*|*"Resource temporarily"*) err=fork-failed;; esac; done < /tmp/fork-errors
echo tasks=$n
echo error=$err
exec sleep 100
"""
REPORT_TIMEOUT_S = 60


def _count(raw: str) -> str:
    """How many of the 24 sleeps got a task, by meaning: the exact number under the limit depends on accounting."""
    if not raw.isdigit():
        return ABSENT
    n = int(raw)
    if n == WANTED:
        return f"all {WANTED}"
    return f"at most {LIMIT}" if n <= LIMIT else f"{n} (over the limit)"


def _host_count(host: int | None, inside: str) -> str:
    """The tasks the host counts for the container, against those the container holds (its shell included)."""
    if host is None or not inside.isdigit():
        return "not readable"
    held = int(inside) + 1
    if abs(host - held) <= 2:
        return "the container's tasks"
    return "fewer than the container holds" if host < held else "more than the container holds"


@scenario("resources/pids")
def test_pids(ctx: Ctx) -> dict[str, Any]:
    c = ctx.run(["sh", "-c", SCRIPT], pids_limit=LIMIT)
    report = poll(lambda: parse_pairs(ctx.logs(c, stderr=False)), lambda p: "error" in p, timeout=REPORT_TIMEOUT_S,
                  interval=0.5)
    seen = report.value
    reading = hostcgroup.of_container(ctx.client, c.id)
    with refusals("docker stats"):
        stats_limit, stats_current = hostcgroup.stats_pids(ctx.client.api.stats(c.id, stream=False, one_shot=True))
    ctx.notes.update(tasks=seen.get("tasks"), stderr=ctx.logs(c, stdout=False)[-1000:], report=report.note(),
                     host=reading.record(), docker_stats={"limit": stats_limit, "current": stats_current})
    if report.timed_out:
        return {"script_reported": f"not within {REPORT_TIMEOUT_S} s"}
    inside = seen.get("tasks", ABSENT)
    return {
        "pids_max": seen.get("pids_max", ABSENT),
        "tasks_started": _count(inside),
        "fork_failed": seen.get("error") == "fork-failed",
        "host": {"pids_max": hostcgroup.describe_count(reading.pids_max) if reading.found else "no cgroup",
                 "tasks_counted": _host_count(reading.pids_current, inside)},
        "docker_stats": {"limit": hostcgroup.describe_count(stats_limit),
                         "tasks_counted": _host_count(stats_current, inside)},
    }
