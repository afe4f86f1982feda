"""Helpers shared by the runtime-command oracles (local work-arounds for what the harness does not offer yet)."""

from __future__ import annotations

import contextlib
import functools
import re
import shlex
import subprocess
import time
from collections.abc import Callable
from typing import Any

import docker
from docker.models.containers import Container

from harness.context import Ctx, Refused, TimedOut, refusals
from harness.waiting import Polled, poll

_LONG_HEX = re.compile(r"\b[0-9a-f]{64}\b")
_SHORT_HEX = re.compile(r"\b[0-9a-f]{12}\b")


def strip_ids(text: str) -> str:
    """Container and exec ids differ on every run; a refusal's text must not (repeats would look flaky)."""
    return _SHORT_HEX.sub("<id>", _LONG_HEX.sub("<id>", text))


def stable_refusals(fn: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
    """Re-raise an oracle's Refused with ids and container names removed, so its evidence is comparable."""

    @functools.wraps(fn)
    def wrapper(ctx: Ctx, **params: Any) -> dict[str, Any]:
        try:
            return fn(ctx, **params)
        except Refused as e:
            text = re.sub(r"vmp-rc-[0-9a-z-]+", "<name>", str(e))
            # A runtime without the subcommand prints its whole usage; one line says as much.
            text = re.sub(r"Usage: .*\n\s*:", "(it printed its usage: no such subcommand):", text, flags=re.S)
            raise Refused(strip_ids(text)) from e

    return wrapper


def name(ctx: Ctx, what: str) -> str:
    """A container name unique to this oracle run (for CLI-created containers and readable evidence)."""
    return f"vmp-rc-{what}-{ctx.run_id[-4:]}-{time.monotonic_ns() % 10**9}"


def label_flags(ctx: Ctx) -> list[str]:
    """The run's labels as CLI flags, so a CLI-created container is found by the label clean-up."""
    return [arg for k, v in ctx.labels.items() for arg in ("--label", f"{k}={v}")]


def cli_bytes(ctx: Ctx, *args: str, input: bytes | None = None,
              timeout: float = 60) -> subprocess.CompletedProcess[bytes]:
    """The docker CLI with bytes on stdin and bytes back (ctx.cli has neither); the exit code is the caller's."""
    ctx.evidence.command("docker " + shlex.join(args) + (f" < ({len(input)} bytes)" if input is not None else ""))
    try:
        return subprocess.run(["docker", "-H", ctx.docker_host, *args], input=input,
                              stdin=None if input is not None else subprocess.DEVNULL,
                              capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as e:
        raise TimedOut(f"docker {' '.join(args[:2])}: no answer within {timeout}s") from e


def adopt(ctx: Ctx, container_name: str) -> None:
    """Remove a CLI-created container with the oracle's other objects, even if the oracle fails."""

    def remove() -> None:
        with contextlib.suppress(docker.errors.NotFound):
            ctx.client.containers.get(container_name).remove(force=True, v=True)

    remove.__name__ = f"remove {container_name}"
    ctx.on_cleanup(remove)


def state(ctx: Ctx, c: Container) -> dict[str, Any]:
    """The container's State from docker inspect."""
    return ctx.inspect(c)["State"]


def counter_values(text: str) -> list[int]:
    """The integers a counter printed, one a line; anything else is ignored."""
    return [int(line) for line in text.split() if line.isdigit()]


ATTRIBUTES = ("exitCode", "signal")
"""Event attributes that are effects (how a process ended, which signal was sent); the rest are ids and names."""


def actions(ctx: Ctx, container_id: str, since: float) -> list[str]:
    """The container's events from `since` until now, as 'action attr=value' strings without ids or commands."""
    with refusals("docker events"):
        stream = ctx.client.api.events(since=f"{since:.6f}", until=f"{time.time():.6f}",
                                       filters={"container": container_id}, decode=True)
        events = list(stream)
    out = []
    for e in events:
        action = e.get("Action", "").split(":", 1)[0]  # "exec_start: sh -c ..." -> "exec_start"
        attrs = e.get("Actor", {}).get("Attributes", {})
        kind = "" if e.get("Type") == "container" else f"{e.get('Type')} "
        out.append(kind + " ".join([action, *(f"{k}={attrs[k]}" for k in ATTRIBUTES if k in attrs)]))
    return out


def actions_until(ctx: Ctx, container_id: str, since: float, until: Callable[[list[str]], bool],
                  timeout: float = 3) -> Polled[list[str]]:
    """actions() again until `until` holds: the daemon may publish an event a moment after the call returns."""
    return poll(lambda: actions(ctx, container_id, since), until, timeout=timeout)


COUNTER = "i=0; while :; do i=$((i+1)); echo $i; sleep 0.1; done"
"""A counter printing 1, 2, 3 ... ten times a second to stdout: its progress is readable through docker logs."""
