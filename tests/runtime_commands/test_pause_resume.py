"""`docker pause` / `docker unpause`: a counter stops while paused and goes on from where it stopped.

The counter prints to stdout and is read through `docker logs`, which needs nothing from the frozen container
(`docker exec` is refused while paused, by Docker itself, for every runtime: observed too).
"""

from __future__ import annotations

import time
from typing import Any

from harness.context import Ctx, Refused, refusals
from harness.scenario import scenario
from harness.waiting import poll
from tests.runtime_commands._support import COUNTER, counter_values, stable_refusals, state

PAUSED_FOR = 1.0
"""Seconds the counter is watched while paused: ten of its ticks."""
AT_ONCE_TICKS = 5
"""Values that may still reach the log after `docker pause` returns (0.5 s of ticks; under runc it is 0 or 1, a
line in flight): more means the workload kept running after the command said it was paused."""


@scenario("runtime_commands/pause-resume")
@stable_refusals
def test_pause_resume(ctx: Ctx) -> dict[str, Any]:
    c = ctx.run(["sh", "-c", COUNTER])

    def printed() -> list[int]:
        return counter_values(ctx.logs(c, stderr=False))

    if poll(printed, lambda v: len(v) >= 3, timeout=10).timed_out:
        return {"counter_printed": "not 3 values within 10 s"}
    with refusals("docker pause"):
        c.pause()
    paused_at = time.monotonic()
    at_return = printed()[-1]
    status_paused = state(ctx, c)["Status"]

    # A line written just before the freeze can reach the log a moment later: wait until the log is quiet (two
    # reads 0.3 s apart agree). How long that took, and how far the counter got, is observed below.
    last = printed()
    quiet = False
    while not quiet and time.monotonic() < paused_at + 3:
        time.sleep(0.3)
        now = printed()
        quiet, last = now == last, now
    frozen_at = last[-1]
    ctx.notes["pause"] = {"value_when_pause_returned": at_return, "frozen_at": frozen_at, "log_quiet": quiet,
                          "quiet_after_s": round(time.monotonic() - paused_at, 2)}
    time.sleep(PAUSED_FOR)
    while_paused = printed()[-1]

    try:
        ctx.exec(c, "true")
        exec_while_paused = "accepted"
    except Refused as e:
        exec_while_paused = "refused: paused" if "paused" in str(e) else "refused"

    with refusals("docker unpause"):
        c.unpause()
    resumed = poll(printed, lambda v: v[-1] >= frozen_at + 3, timeout=10)
    ctx.notes["unpause"] = resumed.note()
    after = resumed.value
    return {
        "status_while_paused": status_paused,
        "stopped_when_pause_returned": "at once" if frozen_at - at_return <= AT_ONCE_TICKS and quiet
        else "later" if quiet else "not within 3 s",
        "advanced_while_paused": while_paused > frozen_at,
        "exec_while_paused": exec_while_paused,
        "advances_after_unpause": "within 10 s" if resumed.reached else "not within 10 s",
        "continuous_count": after == list(range(1, len(after) + 1)),
        "status_after_unpause": state(ctx, c)["Status"],
    }
