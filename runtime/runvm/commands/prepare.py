"""runvm's own: make this host ready to run containers (guest kernel and image, VM template, pool clean-up)"""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-template", action="store_true", help="build the guest only (containers then cold-boot)")


def run(args: argparse.Namespace, ctx: object) -> int:
    """Idempotent: each step reuses what is current. The host set-up runs it after dockerd is up."""
    from runtime.guest import build
    from runtime.runvm.commands import pool, template

    print(f"guest {build.ensure(log=lambda line: print(line, flush=True))}", flush=True)
    if not args.no_template:
        print("template ", end="", flush=True)
        template.run(argparse.Namespace(action="build", quiet=False), ctx)
    print("pool ", end="", flush=True)
    pool.run(argparse.Namespace(action="prune", wait=0.0), ctx)
    return 0
