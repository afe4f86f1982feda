"""`docker top`: the commands listed are the container's processes.

dockerd asks the runtime for the container's pids and runs `ps` on the host for them, so a runtime that answers
with pids from another namespace (a sandbox's or a guest's) makes `docker top` list unrelated host processes.
"""

from __future__ import annotations

from typing import Any

from harness.context import Ctx, Refused, refusals
from harness.scenario import scenario
from tests.runtime_commands._support import poll, stable_refusals

MAX_CMD = 48
"""Commands are shown as evidence; a host process's long command line is cut."""


def _short(cmd: str) -> str:
    return cmd if len(cmd) <= MAX_CMD else cmd[:MAX_CMD] + "..."


@scenario("runtime_commands/ps")
@stable_refusals
def test_ps(ctx: Ctx) -> dict[str, Any]:
    c = ctx.run(["sleep", "1000"])
    ctx.cli("exec", "-d", c.id, "sleep", "2000")

    def inside() -> list[str]:
        # The processes as the container sees them, minus this probe's own ps.
        r = ctx.exec(c, ["ps", "-o", "pid,args"])
        if r.code != 0:
            raise Refused(f"docker exec ps: exit {r.code}: {r.stderr.strip()[:300]}")
        cmds = [line.split(None, 1)[1] for line in r.stdout.splitlines()[1:] if len(line.split(None, 1)) == 2]
        return sorted(cmd for cmd in cmds if cmd != "ps -o pid,args")

    seen_inside = poll(inside, lambda cmds: "sleep 2000" in cmds, timeout=10)

    def top() -> list[str]:
        with refusals("docker top"):
            t = ctx.client.api.top(c.id)
        col = t["Titles"].index("CMD") if "CMD" in t["Titles"] else -1
        return sorted(_short(p[col]) for p in t.get("Processes") or [])

    listed = poll(top, lambda cmds: "sleep 2000" in cmds, timeout=2)
    return {
        "top_cmds": listed,
        "inside_cmds": seen_inside,
        "top_equals_inside": listed == seen_inside,
    }
