"""print a container's statistics as runc-style JSON events (--stats for one, else every --interval)"""

from __future__ import annotations

import argparse
import json
import sys
import time

from runtime.runvm.shim import control
from runtime.runvm.state import STOPPED, check_id


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--stats", action="store_true", help="print one stats event and exit")
    p.add_argument("--interval", default="5s")
    p.add_argument("id")


def _seconds(text: str) -> float:
    return float(text[:-1]) if text.endswith("s") else float(text)


def run(args: argparse.Namespace, ctx: object) -> int:
    store = ctx.store  # type: ignore[attr-defined]
    check_id(args.id)
    while True:
        st = store.load(args.id)
        if st.effective_status() == STOPPED:
            return 0
        stats = control.request(store.sock_dir(args.id), {"op": "stats"}).get("stats") or {}
        json.dump({"type": "stats", "id": args.id, "data": stats}, sys.stdout)
        sys.stdout.write("\n")
        sys.stdout.flush()
        if args.stats:
            return 0
        time.sleep(_seconds(args.interval))
