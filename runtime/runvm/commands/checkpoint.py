"""checkpoint a running container: CRIU in the guest writes its processes' state to --image-path"""

from __future__ import annotations

import argparse

from runtime.runvm.errors import RunvmError
from runtime.runvm.shim import control
from runtime.runvm.state import PAUSED, RUNNING, check_id


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
    return 0
