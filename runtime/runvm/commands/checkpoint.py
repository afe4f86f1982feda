"""checkpoint a running container: CRIU in the guest writes its processes' state to --image-path"""

from __future__ import annotations

import argparse

from runtime.runvm import wait
from runtime.runvm.errors import RunvmError
from runtime.runvm.shim import control
from runtime.runvm.state import PAUSED, RUNNING, State, check_id


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--image-path", required=True, help="directory for the checkpoint images")
    p.add_argument("--work-path", default=None, help="accepted; CRIU's work files stay in the guest")
    p.add_argument("--parent-path", default=None)
    p.add_argument("--leave-running", action="store_true", help="keep the container running afterwards")
    for flag in ("--tcp-established", "--ext-unix-sk", "--shell-job", "--lazy-pages", "--file-locks",
                 "--pre-dump", "--auto-dedup"):
        p.add_argument(flag, action="store_true", help="accepted for runc compatibility")
    p.add_argument("--manage-cgroups-mode", default=None)
    p.add_argument("--empty-ns", action="append", default=[])
    p.add_argument("id")


def run(args: argparse.Namespace, ctx: object) -> int:
    store = ctx.store  # type: ignore[attr-defined]
    st = store.load(check_id(args.id))
    if st.effective_status() not in (RUNNING, PAUSED):
        raise RunvmError(f"cannot checkpoint a container that is {st.effective_status()}")
    control.request(store.sock_dir(args.id), {"op": "checkpoint", "image_path": args.image_path,
                                              "leave_running": args.leave_running}, timeout=600)
    if not args.leave_running:
        _wait_stopped(st)
    return 0


def _wait_stopped(st: State, timeout: float = 30.0) -> None:
    """As with runc, the container's process must be gone when the command returns (CRIU killed the guest
    processes; the vm-shim follows within moments). containerd's shim then reports the exit as soon as this call
    returns, before the resume that follows every checkpoint: Docker does not see a paused, dead container."""
    wait.poll(lambda: not st.alive(), timeout, interval=0.01)
