"""delete a container: its VM, shims and state (idempotent with --force)"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from runtime.runvm import cgroups
from runtime.runvm.errors import NotFound, RunvmError
from runtime.runvm.state import CREATED, STOPPED, check_id


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--force", "-f", action="store_true", help="kill the container if it is running")
    p.add_argument("id")


SHIM_EXIT_S = 3.0
"""Once its VM is gone a vm-shim records the exit and leaves by itself; after this long it is killed."""


def _end_shim(pid: int, start: int) -> None:
    """The shim, once its VM has been stopped: it notices, writes its exit and leaves; if it does not, SIGKILL
    (through a pidfd: never a reused pid) and wait for its end (bounded: stop.py's)."""
    from runtime.runvm.vm import stop

    stop.stop(pid, start=start, quit_s=0, term_s=0, kill_s=stop.KILL_S, grace_s=SHIM_EXIT_S)


def _stop_our_vm(pid: int, state_dir: str, qmp_sock: Path) -> None:
    """Only the QEMU whose command line names this container's state directory (pids get reused): checked
    through a pidfd held across the check, then ended the one way (stop.py)."""
    try:
        fd = os.pidfd_open(pid)
    except OSError:
        return  # gone: the usual case, the shim stopped it when the container exited
    try:
        import psutil  # only for a VM still running at delete: `docker run --rm` never gets here

        try:
            ours = state_dir in " ".join(psutil.Process(pid).cmdline())
        except psutil.Error:
            ours = False
        if ours:
            from runtime.runvm.vm import stop

            stop.stop(pid, qmp_sock, pidfd=fd)
    finally:
        os.close(fd)


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
    slot = st.extra.get("pool_slot")
    # the VM first, the clean way (a SIGKILLed shim would take its own QEMU down with SIGKILL), then its shim
    if st.qemu_pid:
        qmp_sock = Path(slot) / "qmp.sock" if slot else store.sock_dir(container_id) / "qmp.sock"
        _stop_our_vm(st.qemu_pid, slot or str(store.dir(container_id)), qmp_sock)
    if st.alive():
        _end_shim(st.pid, st.pid_start)
    if slot:
        from runtime.runvm.vm import pool

        pool.remove_slot(Path(slot))
    cgroups.remove(st.extra.get("cgroup_path") or f"/runvm/{container_id}")
    store.remove(container_id)
    return 0
