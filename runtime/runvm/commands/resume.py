"""resume every process of a container (the guest's freezer cgroup)"""

from __future__ import annotations

import argparse

from runtime.runvm.shim import control
from runtime.runvm.state import check_id


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("id")


def run(args: argparse.Namespace, ctx: object) -> int:
    store = ctx.store  # type: ignore[attr-defined]
    store.load(check_id(args.id))
    control.request(store.sock_dir(args.id), {"op": "resume"})
    return 0
