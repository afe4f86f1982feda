"""What a cell's containers left on the host after clean-up, found the way the host itself knows them.

Three independent views, none of them a guess from a command line: the processes still in a cgroup of one of
the cell's containers (a leaked VM stays in the container's cgroup), the containerd shims whose exact `-id`
names a container Docker no longer has (and everything below them), and the runtime's own `list` under the
root Docker gave it (runc-CLI compatible runtimes answer it), or the runtime's own `leftovers` command where
its runtimes/ file names one. Each finding is host impact; the orphan shims
are killed afterwards, by pid, so the next cell starts clean.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterable
from pathlib import Path

import psutil

from harness import procs, runtime_data
from harness.paths import DOCKER_EXEC_ROOT


def in_cgroups(container_ids: Iterable[str]) -> list[str]:
    """Live processes whose cgroup path (any hierarchy) names one of the containers."""
    ids = [c for c in container_ids if c]
    found: list[str] = []
    if not ids:
        return found
    for proc in psutil.process_iter():
        try:
            groups = Path(f"/proc/{proc.pid}/cgroup").read_text()  # psutil has no cgroup membership
        except OSError:
            continue
        hit = next((cid for cid in ids if cid in groups), None)
        if hit is not None and procs.alive(proc.pid):
            found.append(f"process {proc.pid} ({procs.comm(proc.pid)}) still in the cgroup of container "
                         f"{hit[:12]}")
    return sorted(found)


def describe_shim(cid: str, pid: int) -> list[str]:
    below = [p for p in procs.descendants(pid) if procs.alive(p)]
    return [f"orphan containerd shim {pid} of removed container {cid[:12]}"
            + (f", with {len(below)} process(es) below it: "
               + ", ".join(f"{p} ({procs.comm(p)})" for p in below[:8]) if below else "")]


def runtime_reported(runtime: str, path: str, args: list[str], container_ids: Iterable[str],
                     exec_root: Path = DOCKER_EXEC_ROOT) -> list[str]:
    """What the runtime itself says it still has on the host for these containers: its own `leftovers` command
    when its runtimes/ file names one, else the containers its runc-style `list` still shows."""
    ids = sorted(set(container_ids))
    root = exec_root / f"runtime-{runtime}" / "moby"
    described = runtime_data.get(runtime)
    if described is not None and described.leftovers:
        return _own_report(runtime, described.expand(described.leftovers, root=str(root)) + ids)
    return runtime_listing(runtime, path, args, ids, root)


def _own_report(runtime: str, argv: list[str]) -> list[str]:
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as e:
        return [f"{runtime}'s leftovers command did not answer: {e}"]
    if r.returncode != 0:
        return [f"{runtime}'s leftovers command failed ({r.returncode}): {r.stderr.strip()[-300:]}"]
    try:
        found = json.loads(r.stdout)
    except ValueError:
        return [f"{runtime}'s leftovers command printed no JSON: {r.stdout[:200]!r}"]
    if not isinstance(found, list):
        return [f"{runtime}'s leftovers command printed {type(found).__name__}, not a list"]
    return [f"{runtime}: {item}" for item in found]


def runtime_listing(runtime: str, path: str, args: list[str], container_ids: Iterable[str], root: Path) -> list[str]:
    """Containers a runc-CLI compatible runtime still lists under the root Docker passes it."""
    if not root.is_dir():
        return []
    try:
        r = subprocess.run([path, *args, "--root", str(root), "list", "--format", "json"], capture_output=True,
                           text=True, timeout=30, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as e:
        return [f"`{runtime} list` under {root} did not answer: {e}"]
    if r.returncode != 0:
        return []  # a runtime without a runc-style `list`: its listing says nothing here
    try:
        listed = {c.get("id") for c in json.loads(r.stdout or "null") or []}
    except (ValueError, AttributeError):
        return []
    return [f"{runtime} still lists container {cid[:12]} under {root}" for cid in sorted(set(container_ids))
            if cid in listed]
