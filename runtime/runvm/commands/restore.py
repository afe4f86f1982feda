"""restore a container (CRIU inside the guest)"""

from __future__ import annotations

import argparse

from runtime.runvm.errors import RunvmError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--image-path", default=None)
    p.add_argument("--work-path", default=None)
    p.add_argument("--leave-running", action="store_true")
    p.add_argument("id")


def run(args: argparse.Namespace, ctx: object) -> int:
    raise RunvmError("restore is not implemented in runvm yet")
