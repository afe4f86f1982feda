"""Which OCI runtimes the daemon knows, and what each one is (path, arguments, version)."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass, field
from typing import Any

INTERNAL_PREFIX = "io.containerd."
"""containerd's own shim names that dockerd lists next to the runtimes; they are not runtimes to test."""


@dataclass(frozen=True)
class RuntimeInfo:
    name: str
    path: str
    args: list[str] = field(default_factory=list)
    version: str = ""


class UnknownRuntime(ValueError):
    pass


def _version(path: str, launcher: tuple[str, ...] = ()) -> str:
    """`path --version`, run where the daemon runs it (launcher: how to enter its stack; empty on the host)."""
    exe = path if launcher else shutil.which(path) or path
    try:
        out = subprocess.run([*launcher, exe, "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"unknown ({e})"
    return (out.stdout or out.stderr).strip()


def discover(info: dict[str, Any], launcher: tuple[str, ...] = ()) -> dict[str, RuntimeInfo]:
    """From `docker info`: every registered runtime except containerd's internal shim names."""
    found: dict[str, RuntimeInfo] = {}
    for name, spec in sorted(info.get("Runtimes", {}).items()):
        if name.startswith(INTERNAL_PREFIX):
            continue
        path = spec.get("path", name)
        found[name] = RuntimeInfo(name, path, list(spec.get("runtimeArgs") or []), _version(path, launcher))
    return found


def select(available: dict[str, RuntimeInfo], requested: list[str], baseline: str,
           opt_in: frozenset[str] = frozenset()) -> list[str]:
    """The targets of a run: what was asked for (default: all but the opt-in ones), always with the baseline
    as its own A/A target."""
    unknown = [r for r in [*requested, baseline] if r not in available]
    if unknown:
        raise UnknownRuntime(
            f"unknown runtime(s): {', '.join(unknown)}; the Docker daemon has: {', '.join(sorted(available))} "
            "(register others in /etc/docker/daemon.json under \"runtimes\")")
    targets = list(dict.fromkeys(requested or sorted(r for r in available if r not in opt_in)))
    if baseline not in targets:
        targets.insert(0, baseline)
    return [baseline, *[t for t in targets if t != baseline]]
