"""delete a container: its VM, shims and state (idempotent with --force)"""

from __future__ import annotations

import argparse
import os
import signal
import time

from runtime.runvm import cgroups
from runtime.runvm.errors import NotFound, RunvmError
from runtime.runvm.state import CREATED, STOPPED, check_id, proc_start_time


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--force", "-f", action="store_true", help="kill the container if it is running")
    p.add_argument("id")


def _kill_and_wait(pid: int, start: int, timeout: float = 10) -> None:
    if proc_start_time(pid) != start:
        return
    os.kill(pid, signal.SIGKILL)  # QEMU dies with it (PDEATHSIG), its mount namespace with both
    deadline = time.monotonic() + timeout
    while proc_start_time(pid) == start and time.monotonic() < deadline:
        time.sleep(0.01)


def _is_our_qemu(pid: int, state_dir: str) -> bool:
    """Only the QEMU whose command line names this container's state directory (pids get reused)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return state_dir.encode() in f.read()
    except OSError:
        return False


def run(args: argparse.Namespace, ctx: object) -> int:
    store = ctx.store  # type: ignore[attr-defined]
    container_id = check_id(args.id)
    try:
        st = store.load(container_id)
    except NotFound:
        if args.force:
            store.remove(container_id)
            return 0
        raise
    status = st.effective_status()
    if status not in (STOPPED, CREATED) and not args.force:
        raise RunvmError(f"cannot delete container {container_id} that is not stopped: {status}")
    if st.alive():
        _kill_and_wait(st.pid, st.pid_start)
    slot = st.extra.get("pool_slot")
    if st.qemu_pid and _is_our_qemu(st.qemu_pid, slot or str(store.dir(container_id))):
        os.kill(st.qemu_pid, signal.SIGKILL)
    if slot:
        from pathlib import Path

        from runtime.runvm.vm import pool

        pool.remove_slot(Path(slot))
    cgroups.remove(st.extra.get("cgroup_path") or f"/runvm/{container_id}")
    store.remove(container_id)
    return 0
