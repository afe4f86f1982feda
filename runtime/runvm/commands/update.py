"""change a running container's resource limits (applied in the guest's cgroups)"""

from __future__ import annotations

import argparse
import json
import sys

from runtime.runvm import log
from runtime.runvm.errors import RunvmError
from runtime.runvm.shim import control
from runtime.runvm.state import STOPPED, check_id


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--resources", "-r", default=None, help="LinuxResources JSON file, - for stdin")
    p.add_argument("--memory", type=int, default=None)
    p.add_argument("--memory-swap", type=int, default=None)
    p.add_argument("--memory-reservation", type=int, default=None)
    p.add_argument("--kernel-memory", type=int, default=None)
    p.add_argument("--cpu-shares", type=int, default=None)
    p.add_argument("--cpu-quota", type=int, default=None)
    p.add_argument("--cpu-period", type=int, default=None)
    p.add_argument("--cpuset-cpus", default=None)
    p.add_argument("--cpuset-mems", default=None)
    p.add_argument("--pids-limit", type=int, default=None)
    p.add_argument("id")


def _resources(args: argparse.Namespace) -> dict:
    if args.resources:
        try:
            if args.resources == "-":
                text = sys.stdin.read()
            else:
                with open(args.resources) as f:
                    text = f.read()
            res = json.loads(text)
        except (OSError, json.JSONDecodeError) as e:
            raise RunvmError(f"invalid --resources: {e}") from e
        if not isinstance(res, dict):
            raise RunvmError("invalid --resources: not a JSON object")
        return res
    res = {"memory": {}, "cpu": {}, "pids": {}}
    for flag, (group, key) in {"memory": ("memory", "limit"), "memory_swap": ("memory", "swap"),
                               "memory_reservation": ("memory", "reservation"),
                               "kernel_memory": ("memory", "kernel"), "cpu_shares": ("cpu", "shares"),
                               "cpu_quota": ("cpu", "quota"), "cpu_period": ("cpu", "period"),
                               "cpuset_cpus": ("cpu", "cpus"), "cpuset_mems": ("cpu", "mems"),
                               "pids_limit": ("pids", "limit")}.items():
        value = getattr(args, flag)
        if value is not None:
            res[group][key] = value
    return {k: v for k, v in res.items() if v}


def run(args: argparse.Namespace, ctx: object) -> int:
    store = ctx.store  # type: ignore[attr-defined]
    st = store.load(check_id(args.id))
    if st.effective_status() == STOPPED:
        raise RunvmError("container not running")
    log.trace(f"update resources {json.dumps(_res := _resources(args))}")
    reply = control.request(store.sock_dir(args.id), {"op": "update", "resources": _res}, timeout=120)
    for w in reply.get("warnings") or []:
        log.warning(w)
    return 0
