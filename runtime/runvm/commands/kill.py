"""send a signal to a container's process (or to all of them with --all)"""

from __future__ import annotations

import argparse

from runtime.runvm import spec as specmod
from runtime.runvm.errors import RunvmError
from runtime.runvm.shim import control
from runtime.runvm.state import STOPPED, check_id


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--all", "-a", action="store_true", help="signal every process in the container")
    p.add_argument("id")
    p.add_argument("signal", nargs="?", default="SIGTERM")


def run(args: argparse.Namespace, ctx: object) -> int:
    sig = specmod.parse_signal(args.signal)
    store = ctx.store  # type: ignore[attr-defined]
    st = store.load(check_id(args.id))
    if st.effective_status() == STOPPED:
        raise RunvmError("container not running")
    control.request(store.sock_dir(args.id), {"op": "kill", "signal": sig, "all": args.all})
    return 0
