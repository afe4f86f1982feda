"""list containers under --root"""

from __future__ import annotations

import argparse
import json
import sys

from tabulate import tabulate


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", "-f", default="table", choices=["table", "json"])
    p.add_argument("--quiet", "-q", action="store_true")


def run(args: argparse.Namespace, ctx: object) -> int:
    store = ctx.store  # type: ignore[attr-defined]
    states = []
    for cid in store.ids():
        try:
            states.append(store.load(cid).oci())
        except Exception:
            continue
    if args.quiet:
        for s in states:
            print(s["id"])
    elif args.format == "json":
        json.dump(states, sys.stdout)
        sys.stdout.write("\n")
    else:
        print(tabulate([[s["id"], s["pid"], s["status"], s["bundle"], s["created"]] for s in states],
                       headers=["ID", "PID", "STATUS", "BUNDLE", "CREATED"], tablefmt="plain"))
    return 0
