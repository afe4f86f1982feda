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


UNLIMITED_V1 = "9223372036854771712"
"""cgroup v1's "no limit" for byte limits; the v2 view reports `max` as this, so one reading covers both."""

CGROUP_VIEW = {
    # meaning: (cgroup v1 file, cgroup v2 expression over the container's own cgroup directory)
    "memory_limit": ("memory/memory.limit_in_bytes", '_unl "$(_cg memory.max)"'),
    "memsw_limit": ("memory/memory.memsw.limit_in_bytes",
                    'm=$(_cg memory.max); s=$(_cg memory.swap.max); '
                    'if [ "$m" = absent ]; then echo absent; elif [ "$m" = max ] || [ "$s" = max ]; '
                    f'then echo {UNLIMITED_V1}; elif [ "$s" = absent ]; then echo "$m"; else echo $((m + s)); fi'),
    "kmem_limit": ("memory/memory.kmem.limit_in_bytes", "echo absent"),
    "cfs_quota_us": ("cpu/cpu.cfs_quota_us", 'set -- $(_cg cpu.max); [ "$1" = max ] && echo -1 || echo "$1"'),
    "cfs_period_us": ("cpu/cpu.cfs_period_us", 'set -- $(_cg cpu.max); echo "${2:-absent}"'),
    "cpu_shares": ("cpu/cpu.shares", 'w=$(_cg cpu.weight); [ "$w" = absent ] && echo absent || echo "weight $w"'),
    "cpuset_cpus": ("cpuset/cpuset.cpus", "_cg cpuset.cpus"),
    "pids_max": ("pids/pids.max", "_cg pids.max"),
}
"""What the container reads of its own cgroup limits, by meaning, on either cgroup version: v1's values, and the
v2 files converted to v1's meaning (memory+swap for memsw, -1 for no quota). Only the CPU weight has no v1
equivalent (Docker maps --cpu-shares onto cpu.weight on v2); it reads `weight N` there."""


def cgroup_view(names: dict[str, str], root: str = "/sys/fs/cgroup") -> str:
    """A shell snippet printing `name=value` for each {name: meaning of CGROUP_VIEW}, whichever cgroup version
    the container sees (v2 when its cgroup root has cgroup.controllers)."""
    lines = [f"_cg() {{ head -n1 {shlex.quote(root)}/\"$1\" 2>/dev/null || echo {ABSENT}; }}",
             f'_unl() {{ [ "$1" = max ] && echo {UNLIMITED_V1} || echo "$1"; }}']
    for name, meaning in names.items():
        v1, v2 = CGROUP_VIEW[meaning]
        lines.append(f"if [ -f {shlex.quote(root)}/cgroup.controllers ]; then v=$({v2}); else v=$(_cg {v1}); fi; "
                     f"printf '%s=%s\\n' {shlex.quote(name)} \"$v\"")
    return "\n".join(lines)


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
