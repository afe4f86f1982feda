"""Finding and removing what runs left behind: labelled Docker objects, disposable daemons, orphan shims.

A run holds an flock on its lock file while alive; anything belonging to a run whose lock is free is a leftover.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

import docker
import psutil

from harness import labels, paths, procs
from harness.daemon import DAEMONS, DaemonRecord, teardown

RUNS_STATE = paths.STATE / "runs"
SHIM = "containerd-shim"


class RunLock:
    def __init__(self, run_id: str) -> None:
        RUNS_STATE.mkdir(parents=True, exist_ok=True)
        self.run_id = run_id
        self.path = RUNS_STATE / f"{run_id}.lock"
        self.ledger = RUNS_STATE / f"{run_id}.ids"
        self._fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o644)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._fd)
            raise SystemExit(f"vmparity: run {run_id!r} is in progress in another process; choose another "
                             "--run-dir (its name is the run id)") from None

    def remember(self, container_id: str) -> None:
        with open(self.ledger, "a") as f:
            f.write(container_id + "\n")

    def release(self) -> None:
        os.close(self._fd)
        self.path.unlink(missing_ok=True)
        self.ledger.unlink(missing_ok=True)


def _is_live(lock: Path) -> bool:
    try:
        fd = os.open(lock, os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def live_runs() -> set[str]:
    if not RUNS_STATE.is_dir():
        return set()
    return {p.stem for p in RUNS_STATE.glob("*.lock") if _is_live(p)}


def shims_by_container() -> dict[str, int]:
    found = {}
    for proc in psutil.process_iter():
        argv = procs.cmdline(proc.pid)
        if argv and SHIM in os.path.basename(argv[0]) and "-id" in argv[:-1]:
            found[argv[argv.index("-id") + 1]] = proc.pid
    return found


def orphan_shims(container_ids: set[str], client: docker.DockerClient) -> dict[str, int]:
    """Shims of the given containers that Docker no longer knows: container id -> shim pid."""
    existing = {c.id for c in client.containers.list(all=True, ignore_removed=True)}
    return {cid: pid for cid, pid in shims_by_container().items()
            if cid in container_ids and cid not in existing and procs.alive(pid)}


def kill_orphan_shims(container_ids: set[str], client: docker.DockerClient) -> list[str]:
    """Shims (and their sandboxes) that outlived their removed container: a runtime leak, cleared by pid."""
    return [f"orphan shim of {cid[:12]}: pids {procs.kill_tree(pid)}"
            for cid, pid in orphan_shims(container_ids, client).items()]


def remove_leftovers(client: docker.DockerClient, keep_run: str | None = None) -> list[str]:
    """Everything labelled by a run that is no longer alive; returns a line per object removed."""
    live = live_runs() | ({keep_run} if keep_run else set())
    removed: list[str] = []

    def dead(obj_labels: dict[str, str] | None) -> bool:
        return obj_labels is not None and labels.RUN in obj_labels and obj_labels[labels.RUN] not in live

    for c in client.containers.list(all=True, filters={"label": labels.RUN}, ignore_removed=True):
        if dead(c.labels):
            c.remove(force=True, v=True)
            removed.append(f"container {c.name} (run {c.labels[labels.RUN]})")
    for n in client.networks.list(filters={"label": labels.RUN}):
        if dead(n.attrs.get("Labels")):
            n.remove()
            removed.append(f"network {n.name} (run {n.attrs['Labels'][labels.RUN]})")
    for v in client.volumes.list(filters={"label": labels.RUN}):
        if dead(v.attrs.get("Labels")):
            v.remove(force=True)
            removed.append(f"volume {v.name}")
    if DAEMONS.is_dir():
        for owner in sorted(DAEMONS.glob("*/owner.json")):
            try:
                rec = DaemonRecord.load(owner)
            except (OSError, ValueError, TypeError):
                continue
            if rec.run_id not in live:
                forced = teardown(rec)
                removed.append(f"disposable daemon {rec.name} (run {rec.run_id})"
                               + (f": {len(forced)} items removed by force" if forced else ""))
    if RUNS_STATE.is_dir():
        for ledger in RUNS_STATE.glob("*.ids"):
            if ledger.stem in live:
                continue
            ids = set(ledger.read_text().split())
            removed += kill_orphan_shims(ids, client)
            ledger.unlink(missing_ok=True)
            (RUNS_STATE / f"{ledger.stem}.lock").unlink(missing_ok=True)
    return removed
