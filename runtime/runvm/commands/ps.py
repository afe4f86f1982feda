"""list a container's processes (the host pids `docker top` shows through the host's ps)"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

from runtime.runvm.errors import RunvmError
from runtime.runvm.shim import control
from runtime.runvm.state import STOPPED, check_id


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", "-f", default="table", choices=["table", "json"])
    p.add_argument("id")
    p.add_argument("ps_args", nargs=argparse.REMAINDER)


def run(args: argparse.Namespace, ctx: object) -> int:
    store = ctx.store  # type: ignore[attr-defined]
    st = store.load(check_id(args.id))
    if st.effective_status() == STOPPED:
        if args.format == "json":
            print("[]")
            return 0
        raise RunvmError("container not running")
    reply = control.request(store.sock_dir(args.id), {"op": "ps"})
    pids = [int(p) for p in reply.get("host_pids") or []]
    if args.format == "json":
        json.dump(pids, sys.stdout)
        sys.stdout.write("\n")
        return 0
    ps_args = args.ps_args or ["-ef"]
    out = subprocess.run(["ps", *ps_args], capture_output=True, text=True, check=False).stdout.splitlines()
    if out:
        print(out[0])
        wanted = {str(p) for p in pids}
        for line in out[1:]:
            fields = line.split()
            if len(fields) > 1 and (fields[1] in wanted or fields[0] in wanted):
                print(line)
    return 0
