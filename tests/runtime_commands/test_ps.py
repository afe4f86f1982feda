"""`docker top`: the commands listed are the container's processes, and their PIDs are the host's handles on them.

dockerd asks the runtime for the container's pids and runs `ps` on the host for them, so a runtime that answers
with pids from another namespace (a sandbox's or a guest's) makes `docker top` list unrelated host processes.
Users take those PIDs to host tools (kill, strace, perf, nsenter): the oracle sends SIGTERM from the host to the
PID `docker top` lists for the container's trapping shell and watches the shell's trap run inside.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

from harness.context import Ctx, Refused, refusals
from harness.scenario import scenario
from harness.waiting import poll
from tests.runtime_commands._support import stable_refusals

MAX_CMD = 48
"""Commands are shown as evidence; a host process's long command line is cut."""
SHELL = "trap 'echo got-TERM' TERM; echo started; sleep 1000 & while :; do wait; done"
"""PID 1: announces a SIGTERM and goes on waiting for its `sleep 1000` (the trap interrupts `wait`)."""
TRAP_TIMEOUT_S = 10


def _short(cmd: str) -> str:
    return cmd if len(cmd) <= MAX_CMD else cmd[:MAX_CMD] + "..."


def _in_cgroup(pid: int, container_id: str) -> bool:
    """Whether the host process `pid` belongs to the container's cgroup (the only PIDs the oracle may signal)."""
    try:
        return container_id in Path(f"/proc/{pid}/cgroup").read_text()
    except OSError:
        return False


def _signal_listed_shell(ctx: Ctx, container_id: str, processes: list[tuple[int, str]]) -> str:
    """SIGTERM, from the host, to the PID docker top lists as the container's shell; what was done, by meaning.
    A listed PID outside the container's cgroup is a host process: it is never signalled."""
    shells = [pid for pid, cmd in processes if cmd.startswith("sh -c trap")]
    if not shells:
        return "not signalled: docker top lists no process for the shell"
    pid = shells[0]
    if not _in_cgroup(pid, container_id):
        ctx.notes["listed_shell_outside_cgroup"] = pid
        return "not signalled: the PID listed is not in the container's cgroup"
    ctx.evidence.command(f"kill -TERM {pid}  # from the host, the PID docker top lists for the shell")
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return "not signalled: the PID listed is gone"
    return "signalled"


@scenario("runtime_commands/ps")
@stable_refusals
def test_ps(ctx: Ctx) -> dict[str, Any]:
    c = ctx.run(["sh", "-c", SHELL])
    ctx.cli("exec", "-d", c.id, "sleep", "2000")

    def inside() -> list[str]:
        # The processes as the container sees them, minus this probe's own ps.
        r = ctx.exec(c, ["ps", "-o", "pid,args"])
        if r.code != 0:
            raise Refused(f"docker exec ps: exit {r.code}: {r.stderr.strip()[:300]}")
        cmds = [line.split(None, 1)[1] for line in r.stdout.splitlines()[1:] if len(line.split(None, 1)) == 2]
        return sorted(_short(cmd) for cmd in cmds if cmd != "ps -o pid,args")

    seen_inside = poll(inside, lambda cmds: "sleep 2000" in cmds and "sleep 1000" in cmds, timeout=10)
    ctx.notes["inside_listing"] = seen_inside.note()

    def top() -> list[tuple[int, str]]:
        with refusals("docker top"):
            t = ctx.client.api.top(c.id)
        titles = t["Titles"]
        col = titles.index("CMD") if "CMD" in titles else -1
        pid_col = titles.index("PID") if "PID" in titles else None
        return [(int(p[pid_col]) if pid_col is not None and p[pid_col].isdigit() else -1, p[col])
                for p in t.get("Processes") or []]

    # The exec'd sleep is running (seen inside) by now: docker top must list it at once; 2 s for its stragglers.
    listed = poll(top, lambda ps: "sleep 2000" in (cmd for _, cmd in ps), timeout=2)
    ctx.notes["top"] = {**listed.note(), "processes": listed.value}
    cmds = sorted(_short(cmd) for _, cmd in listed.value)

    signalled = _signal_listed_shell(ctx, c.id, listed.value)
    trapped = poll(lambda: ctx.logs(c, stderr=False).split(), lambda out: "got-TERM" in out, timeout=TRAP_TIMEOUT_S)
    ctx.notes["trap"] = trapped.note()
    return {
        "top_cmds": cmds,
        "inside_cmds": seen_inside.value,
        "top_equals_inside": cmds == seen_inside.value,
        "host_sigterm_to_listed_shell": {
            "sent": signalled,
            "trap_ran_inside": "within 10 s" if trapped.reached else "not within 10 s",
            "container_running_after": ctx.inspect(c)["State"]["Running"],
        },
    }
