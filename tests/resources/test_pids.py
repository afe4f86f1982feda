"""`--pids-limit 16`: the container cannot hold more than 16 tasks; the fork past the limit fails with EAGAIN.

The container's shell starts 24 background sleeps from a subshell; when a fork fails, busybox's shell gives up on
that subshell, and the parent counts the tasks that made it with builtins only (no fork left to spare). Tasks, not
`sleep`s: a child may still be between fork and exec when it is counted.
"""

from __future__ import annotations

from typing import Any

from harness.context import Ctx
from harness.scenario import scenario
from tests.resources._support import ABSENT, parse_pairs

LIMIT = 16
WANTED = 24
SCRIPT = f"""
read max < /sys/fs/cgroup/pids/pids.max 2>/dev/null || max={ABSENT}
( i=0; while [ $i -lt {WANTED} ]; do sleep 100 & i=$((i + 1)); done ) 2>/tmp/fork-errors
n=0
for p in /proc/[0-9]*; do [ "${{p#/proc/}}" != "$$" ] && n=$((n + 1)); done
err=none
while read -r line; do case "$line" in *fork*|*"Resource temporarily"*) err=fork-failed;; esac; done < /tmp/fork-errors
echo pids_max=$max
echo tasks=$n
echo error=$err
"""


def _count(raw: str) -> str:
    """How many of the 24 sleeps got a task, by meaning: the exact number under the limit depends on accounting."""
    if not raw.isdigit():
        return ABSENT
    n = int(raw)
    if n == WANTED:
        return f"all {WANTED}"
    return f"at most {LIMIT}" if n <= LIMIT else f"{n} (over the limit)"


@scenario("resources/pids")
def test_pids(ctx: Ctx) -> dict[str, Any]:
    res = ctx.run_to_exit(["sh", "-c", SCRIPT], timeout=60, pids_limit=LIMIT)
    seen = parse_pairs(res.stdout)
    ctx.notes.update(tasks=seen.get("tasks"), stderr=res.stderr[-1000:])
    return {
        "pids_max": seen.get("pids_max", ABSENT),
        "tasks_started": _count(seen.get("tasks", ABSENT)),
        "fork_failed": seen.get("error") == "fork-failed",
    }
