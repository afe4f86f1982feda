"""Merge vmparity's runtimes into /etc/docker/daemon.json without dropping the owner's other settings."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from harness import paths, runtime_data


def wanted_runtimes(only: set[str] | None = None) -> dict[str, dict]:
    """daemon.json's "runtimes" entries for every runtime described in runtimes/ whose executable is installed
    (of those named in `only`, when given: a stack's machine registers the runtimes its stack lists)."""
    return {name: entry for name, r in runtime_data.load().items()
            if (entry := r.registration) is not None and (only is None or name in only)}


def merged(current: dict, only: set[str] | None = None) -> dict:
    new = dict(current)
    runtimes = dict(new.get("runtimes", {}))
    runtimes.update(wanted_runtimes(only))
    new["runtimes"] = runtimes
    new["experimental"] = True  # docker checkpoint needs it
    return new


def ensure(path: Path = paths.DAEMON_JSON, only: set[str] | None = None) -> tuple[bool, set[str]]:
    """Write the merged config when it differs; return (changed, names of top-level keys that changed)."""
    try:
        current = json.loads(path.read_text()) if path.exists() else {}
    except json.JSONDecodeError as e:
        raise SystemExit(f"setup: {path} is not valid JSON ({e}); fix or remove it and run again") from e
    new = merged(current, only)
    if new == current:
        return False, set()
    changed = {k for k in set(new) | set(current) if new.get(k) != current.get(k)}
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False) as f:
        json.dump(new, f, indent=2, sort_keys=True)
        f.write("\n")
    os.replace(f.name, path)
    return True, changed
