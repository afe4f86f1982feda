"""start a created container's process"""

from __future__ import annotations

import argparse

from runtime.runvm.errors import RunvmError
from runtime.runvm.shim import control
from runtime.runvm.state import CREATED, check_id


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("id")


def run(args: argparse.Namespace, ctx: object) -> int:
    store = ctx.store  # type: ignore[attr-defined]
    st = store.load(check_id(args.id))
    status = st.effective_status()
    if status != CREATED:
        raise RunvmError(f"cannot start a container that is {status}")
    control.request(store.sock_dir(args.id), {"op": "start"})
    return 0
