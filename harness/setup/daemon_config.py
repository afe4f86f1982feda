"""Merge vmparity's runtimes into /etc/docker/daemon.json without dropping the owner's other settings."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from harness import paths

RUNSC_ARGS = ["--network=host"]
"""runsc's default network mode refuses to run in Docker's netns on this kind of host
("cannot run with network enabled in root network namespace"); --network=host makes the sandbox use the
container's own netns, which is what Docker set up. Recorded in the run provenance because it changes the matrix."""


def wanted_runtimes() -> dict[str, dict]:
    runtimes: dict[str, dict] = {}
    if Path("/usr/bin/runsc").exists():
        runtimes["runsc"] = {"path": "/usr/bin/runsc", "runtimeArgs": list(RUNSC_ARGS)}
    runtimes["runvm"] = {"path": str(paths.RUNVM_BIN)}
    # the same runtime without VM templating, so the suite can show both start paths behave the same
    runtimes["runvm-cold"] = {"path": str(paths.RUNVM_BIN), "runtimeArgs": ["--boot=cold"]}
    # start latency bought with memory: a translation cache that holds a whole container start under TCG
    runtimes["runvm-tb32"] = {"path": str(paths.RUNVM_BIN), "runtimeArgs": ["--tb-mib=32"]}
    # the start path taken off the critical path: VMs restored ahead of time, one spare per template
    runtimes["runvm-pool"] = {"path": str(paths.RUNVM_BIN), "runtimeArgs": ["--pool"]}
    runtimes["runvm-pool-tb32"] = {"path": str(paths.RUNVM_BIN), "runtimeArgs": ["--pool", "--tb-mib=32"]}
    return runtimes


def merged(current: dict) -> dict:
    new = dict(current)
    runtimes = dict(new.get("runtimes", {}))
    runtimes.update(wanted_runtimes())
    new["runtimes"] = runtimes
    new["experimental"] = True  # docker checkpoint needs it
    return new


def ensure(path: Path = paths.DAEMON_JSON) -> tuple[bool, set[str]]:
    """Write the merged config when it differs; return (changed, names of top-level keys that changed)."""
    try:
        current = json.loads(path.read_text()) if path.exists() else {}
    except json.JSONDecodeError as e:
        raise SystemExit(f"setup: {path} is not valid JSON ({e}); fix or remove it and run again") from e
    new = merged(current)
    if new == current:
        return False, set()
    changed = {k for k in set(new) | set(current) if new.get(k) != current.get(k)}
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False) as f:
        json.dump(new, f, indent=2, sort_keys=True)
        f.write("\n")
    os.replace(f.name, path)
    return True, changed
