"""create and start a container, wait for it and delete it (runc's `run`, for use by hand)"""

from __future__ import annotations

import argparse
import os

from runtime.runvm.commands import create, delete, start


def add_arguments(p: argparse.ArgumentParser) -> None:
    create.add_arguments(p)
    p.add_argument("--detach", "-d", action="store_true")


def run(args: argparse.Namespace, ctx: object) -> int:
    create.run(args, ctx)
    start.run(args, ctx)
    if args.detach:
        return 0
    pid = ctx.store.load(args.id).pid  # type: ignore[attr-defined]
    _, status = os.waitpid(pid, 0)  # the vm-shim is our child: its exit status is the container's
    delete.run(argparse.Namespace(id=args.id, force=True), ctx)
    return os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)
