"""`docker events`: the ordered actions Docker reports for one container's life (create ... destroy).

Events come from the daemon and containerd, fed by the shim's task events; a runtime whose exits or execs are not
seen by the shim shows up as missing or reordered actions.
"""

from __future__ import annotations

import time
from typing import Any

from harness.context import Ctx, refusals
from harness.scenario import scenario
from tests.runtime_commands._support import actions_until, stable_refusals


@scenario("runtime_commands/events")
@stable_refusals
def test_events(ctx: Ctx) -> dict[str, Any]:
    since = time.time() - 1
    c = ctx.create(["sleep", "600"])
    ctx.start(c)
    ctx.exec(c, "exit 4")
    with refusals("docker kill"):
        c.kill()
    ctx.wait(c, timeout=30)
    with refusals("docker rm"):
        c.remove()
    # `docker rm` has returned: the destroy event is due, though published a moment later even under runc.
    seen = actions_until(ctx, c.id, since, lambda s: s[-1:] == ["destroy"], timeout=3)
    ctx.notes["destroy_event"] = seen.note()
    return {"actions": seen.value, "destroy_within_3s": seen.reached}
