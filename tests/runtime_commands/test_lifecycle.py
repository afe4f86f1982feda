"""Exit codes, signals and restarts: what scripts around `docker run`, `kill`, `stop` and `restart` rely on.

PID 1 of a pid namespace does not get signals it has no handler for (the kernel drops them), so a bare
`sleep` as PID 1 survives SIGTERM; with `--init` the signal reaches `sleep` and the container exits 143.
A shell with traps shows which signals arrived, in order, on stdout.
"""

from __future__ import annotations

import time
from typing import Any

from docker.models.containers import Container

from harness.context import Ctx, refusals
from harness.scenario import scenario
from harness.waiting import poll
from tests.runtime_commands._support import stable_refusals, state

TRAPS = ("trap 'echo got-USR1' USR1; trap 'echo got-TERM; exit 0' TERM; echo started; "
         "while :; do sleep 1 & wait $!; done")
"""Announces each start and each signal; `wait` is interrupted by a trapped signal, so handlers run at once."""

IGNORED_FOR = 5.0
"""Seconds a SIGTERM'd PID 1 without handler must keep running to count as ignoring it (the rest of the oracle
takes longer than that anyway, so this is rarely waited for)."""
LINE_TIMEOUT_S = 20
"""How long a trap's announcement may take to reach `docker logs`; the delays are kept in notes."""


def kill(ctx: Ctx, c: Container, signal: str) -> None:
    ctx.evidence.command(f"docker kill -s {signal} {c.name}")
    with refusals(f"docker kill -s {signal}"):
        c.kill(signal=signal)


def lines(ctx: Ctx, c: Container) -> list[str]:
    return ctx.logs(c, stderr=False).split()


def wait_for_line(ctx: Ctx, c: Container, text: str, count: int = 1) -> str:
    """Wait for the `count`-th `text` line; "seen" or "not within 20 s" (the wait is kept in ctx.notes)."""
    polled = poll(lambda: lines(ctx, c), lambda ls: ls.count(text) >= count, timeout=LINE_TIMEOUT_S)
    ctx.notes[f"waited for {text} #{count}"] = polled.note()
    return "seen" if polled.reached else f"not within {LINE_TIMEOUT_S} s"


@scenario("runtime_commands/lifecycle")
@stable_refusals
def test_lifecycle(ctx: Ctx) -> dict[str, Any]:
    obs: dict[str, Any] = {}
    # Start the slow parts first; their waiting overlaps with the rest.
    bare = ctx.run(["sleep", "600"])
    kill(ctx, bare, "TERM")
    termed_at = time.monotonic()
    trapped = ctx.run(["sh", "-c", TRAPS])
    failing = ctx.run(["sh", "-c", "echo run; exit 1"],
                      restart_policy={"Name": "on-failure", "MaximumRetryCount": 2})

    obs["exit_0"] = ctx.run_to_exit(["sh", "-c", "exit 0"]).code
    obs["exit_3"] = ctx.run_to_exit(["sh", "-c", "exit 3"]).code

    killed = ctx.run(["sleep", "600"])
    kill(ctx, killed, "KILL")
    obs["kill_exit"] = ctx.wait(killed, timeout=30)

    init = ctx.run(["sleep", "600"], init=True)
    kill(ctx, init, "TERM")
    obs["term_with_init_exit"] = ctx.wait(init, timeout=30)

    # docker kill -s USR1, docker restart and docker stop on the shell with traps.
    waits = {"started": wait_for_line(ctx, trapped, "started")}
    kill(ctx, trapped, "USR1")
    waits["got-USR1"] = wait_for_line(ctx, trapped, "got-USR1")
    ctx.evidence.command(f"docker restart -t 10 {trapped.name}")
    with refusals("docker restart"):
        trapped.restart(timeout=10)
    waits["started again"] = wait_for_line(ctx, trapped, "started", count=2)
    ctx.evidence.command(f"docker stop -t 10 {trapped.name}")
    with refusals("docker stop"):
        trapped.stop(timeout=10)
    st = state(ctx, trapped)
    obs["traps"] = {
        "stdout": lines(ctx, trapped),
        "exit_after_stop": st["ExitCode"],
        "restart_count": ctx.inspect(trapped)["RestartCount"],
        "lines_awaited": waits,
    }

    # --restart on-failure:2: three runs in all, then it stays exited.
    def settled() -> dict[str, Any]:
        info = ctx.inspect(failing)
        return {"restart_count": info["RestartCount"], "status": info["State"]["Status"],
                "exit_code": info["State"]["ExitCode"]}

    done = poll(settled, lambda s: s["restart_count"] >= 2 and s["status"] == "exited", timeout=30, interval=0.2)
    ctx.notes["on_failure_2_settled"] = done.note()
    # Then it must stay exited: watched for another second for a restart past the maximum.
    final = poll(settled, lambda s: s["status"] != "exited", timeout=1, interval=0.25)
    obs["on_failure_2"] = {**final.value, "runs": lines(ctx, failing).count("run"),
                           "two_restarts_within_30s": done.reached, "restarted_again": final.reached}

    # The bare sleep got SIGTERM at the start: read its state once, at least IGNORED_FOR seconds later, so a
    # runtime that lets it die late is not taken for one that ignores the signal.
    time.sleep(max(0.0, termed_at + IGNORED_FOR - time.monotonic()))
    st = state(ctx, bare)
    ctx.notes["term_pid1_read_after_s"] = round(time.monotonic() - termed_at, 1)
    obs["term_pid1_without_handler"] = "ignored" if st["Status"] == "running" else f"exited {st['ExitCode']}"
    return obs
