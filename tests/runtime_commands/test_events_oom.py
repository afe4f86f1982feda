"""OOM under `docker run -m 32m`: State.OOMKilled, exit code 137 and an `oom` event.

The workload (dd with a 100 MiB buffer) must be killed by the kernel's OOM killer in the container's cgroup, and
Docker learns about it only if the runtime's shim reports the cgroup's OOM notification. Swap equals the limit,
so swap cannot absorb the allocation.
"""

from __future__ import annotations

import time
from typing import Any

from harness.context import Ctx
from harness.scenario import scenario
from tests.runtime_commands._support import actions, stable_refusals, state


@scenario("runtime_commands/events-oom")
@stable_refusals
def test_events_oom(ctx: Ctx) -> dict[str, Any]:
    since = time.time() - 1
    c = ctx.run(["dd", "if=/dev/zero", "of=/dev/null", "bs=100M", "count=1"], mem_limit="32m",
                memswap_limit="32m")
    code = ctx.wait(c, timeout=60)
    st = state(ctx, c)
    seen = actions(ctx, c.id, since)
    for _ in range(30):  # the oom event is published from the shim's notification, possibly after the exit
        if "oom" in seen:
            break
        time.sleep(0.1)
        seen = actions(ctx, c.id, since)
    return {
        "exit_code": code,
        "oom_killed": st["OOMKilled"],
        "oom_event": "oom" in seen,
        "actions": sorted(set(seen)),
    }
