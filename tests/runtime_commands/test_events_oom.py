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
from tests.runtime_commands._support import actions_until, stable_refusals, state


@scenario("runtime_commands/events-oom")
@stable_refusals
def test_events_oom(ctx: Ctx) -> dict[str, Any]:
    since = time.time() - 1
    c = ctx.run(["dd", "if=/dev/zero", "of=/dev/null", "bs=100M", "count=1"], mem_limit="32m",
                memswap_limit="32m")
    code = ctx.wait(c, timeout=60)
    st = state(ctx, c)
    # The oom event comes from the shim's notification, possibly a moment after the exit (under runc too).
    seen = actions_until(ctx, c.id, since, lambda s: "oom" in s, timeout=3)
    ctx.notes["oom_event"] = seen.note()
    return {
        "exit_code": code,
        "oom_killed": st["OOMKilled"],
        "oom_event": "within 3 s of the exit" if seen.reached else "none within 3 s of the exit",
        "actions": sorted(set(seen.value)),
    }
