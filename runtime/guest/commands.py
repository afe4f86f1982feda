"""Running the host tools the build needs, with failures that say which command failed and why."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from pathlib import Path


class CommandFailed(RuntimeError):
    pass


def run(cmd: list[str], cwd: Path | None = None, env: Mapping[str, str] | None = None) -> str:
    """Run a command to completion; return its stdout, or raise with the tail of its stderr."""
    try:
        r = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    except FileNotFoundError as e:
        raise CommandFailed(f"{cmd[0]} not found (scripts/setup-host installs it): {e}") from e
    if r.returncode != 0:
        tail = (r.stderr.strip() or r.stdout.strip())[-3000:]
        raise CommandFailed(f"{' '.join(cmd)} failed with exit status {r.returncode}:\n{tail}")
    return r.stdout
