"""`docker pause` / `docker unpause`: a counter stops while paused and goes on from where it stopped.

The counter prints to stdout and is read through `docker logs`, which needs nothing from the frozen container
(`docker exec` is refused while paused, by Docker itself, for every runtime: observed too).
"""

from __future__ import annotations

import time
from typing import Any

from harness.context import Ctx, Refused, refusals
from harness.scenario import scenario
from tests.runtime_commands._support import COUNTER, counter_values, poll, stable_refusals, state

PAUSED_FOR = 1.0
"""Seconds the counter is watched while paused: ten of its ticks."""


@scenario("runtime_commands/pause-resume")
@stable_refusals
def test_pause_resume(ctx: Ctx) -> dict[str, Any]:
    c = ctx.run(["sh", "-c", COUNTER])

    def printed() -> list[int]:
        return counter_values(ctx.logs(c, stderr=False))

    if len(poll(printed, lambda v: len(v) >= 3, timeout=10)) < 3:
        return {"counter_printed": False}
    with refusals("docker pause"):
        c.pause()
    status_paused = state(ctx, c)["Status"]

    # A line written just before the freeze can reach the log a moment later: wait until the log is quiet.
    last = printed()
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        time.sleep(0.3)
        now = printed()
        if now == last:
            break
        last = now
    frozen_at = last[-1]
    time.sleep(PAUSED_FOR)
    while_paused = printed()[-1]

    try:
        ctx.exec(c, "true")
        exec_while_paused = "accepted"
    except Refused as e:
        exec_while_paused = "refused: paused" if "paused" in str(e) else "refused"

    with refusals("docker unpause"):
        c.unpause()
    after = poll(printed, lambda v: v[-1] >= frozen_at + 3, timeout=10)
    return {
        "status_while_paused": status_paused,
        "advanced_while_paused": while_paused > frozen_at,
        "exec_while_paused": exec_while_paused,
        "advances_after_unpause": after[-1] >= frozen_at + 3,
        "continuous_count": after == list(range(1, len(after) + 1)),
        "status_after_unpause": state(ctx, c)["Status"],
    }
