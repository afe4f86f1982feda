"""Small helpers shared by the resources oracles (kept local to the area: the harness is edited elsewhere)."""

from __future__ import annotations

import contextlib
import re
import secrets
import shlex

import docker
from docker.models.containers import Container

from harness.context import Ctx, Refused

ABSENT = "absent"
CLI_TOKEN = "vmparity.resources.cli"

_IDS = re.compile(r"\b[0-9a-f]{12,64}\b")


def read_files(paths: dict[str, str]) -> str:
    """A shell snippet printing `name=value` for each file (first line, or `absent`), one per line."""
    return "; ".join(f"printf '%s=%s\\n' {shlex.quote(name)} \"$(head -n1 {shlex.quote(path)} 2>/dev/null "
                     f"|| echo {ABSENT})\"" for name, path in paths.items())


def parse_pairs(text: str) -> dict[str, str]:
    """`name=value` lines (as printed by `read_files`) into a dict; an empty value counts as absent."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        name, sep, value = line.partition("=")
        if sep:
            out[name.strip()] = " ".join(value.split()) or ABSENT
    return out


def status_field(status: str, name: str) -> str:
    """One field of /proc/<pid>/status (whitespace-normalised), or `absent` when the kernel does not show it."""
    for line in status.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() == name:
            return " ".join(value.split()) or ABSENT
    return ABSENT


def shorten(message: str, limit: int = 160) -> str:
    """A Docker or runtime error without ids and whitespace noise, short enough to be shown as evidence."""
    text = " ".join(_IDS.sub("<id>", message).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def cli_labels(ctx: Ctx, **extra: str) -> list[str]:
    """The cell's labels as CLI flags, so whatever the CLI creates is found and removed like the SDK's objects."""
    return [f"--label={k}={v}" for k, v in sorted({**ctx.labels, **extra}.items())]


def cli_run(ctx: Ctx, flags: list[str], command: list[str]) -> tuple[Container, list[str]]:
    """`docker run -d` through the CLI, for what the SDK hides (the daemon's warnings, printed on stderr).

    The container carries the cell's labels and is removed with the oracle; a failure is a Refused.
    """
    token = secrets.token_hex(4)
    ctx.on_cleanup(lambda: _remove_labelled(ctx, token))
    proc = ctx.cli("run", "-d", f"--runtime={ctx.runtime}", *cli_labels(ctx, **{CLI_TOKEN: token}), *flags,
                   ctx.image, *command)
    container_id = proc.stdout.strip().splitlines()[-1]
    try:
        c = ctx.client.containers.get(container_id)
    except docker.errors.NotFound as e:
        raise Refused(f"docker run: container {container_id[:12]} vanished") from e
    warnings = [line.removeprefix("WARNING:").strip() for line in proc.stderr.splitlines()
                if line.strip().startswith("WARNING")]
    return c, warnings


def _remove_labelled(ctx: Ctx, token: str) -> None:
    """Remove what one CLI call created, even a container it created but failed to start."""
    for c in ctx.client.containers.list(all=True, filters={"label": f"{CLI_TOKEN}={token}"}):
        _remove(c)


def _remove(c: Container) -> None:
    with contextlib.suppress(docker.errors.NotFound):
        c.remove(force=True, v=True)
