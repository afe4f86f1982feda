"""runvm's own: the spare-VM pool that `runvm --pool` creates take from (fill, list, prune, drain)"""

from __future__ import annotations

import argparse
import json
import sys

from runtime.runvm import wait
from runtime.runvm.errors import RunvmError
from runtime.runvm.vm import plan as planmod
from runtime.runvm.vm import pool, template


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=["fill", "list", "prune", "drain"])
    p.add_argument("--wait", type=float, default=0.0, metavar="SECONDS",
                   help="fill: return once a spare is ready, or fail after this long")


def _pool_key(ctx: object) -> str:
    p = planmod.make(pool.POOL_DIR, pool.POOL_DIR, None, getattr(ctx, "tb_mib", None), None)
    tpl, why = template.find(p.key)
    if tpl is None:
        raise RunvmError(f"no spare VM without a template ({why}); run `runvm template build` first")
    return p.pool_key


def run(args: argparse.Namespace, ctx: object) -> int:
    if args.action == "fill":
        key = _pool_key(ctx)
        pool.prune()
        pool.refill(key, pool.keeper_argv(getattr(ctx, "tb_mib", None)))
        if args.wait:
            try:
                wait.until(lambda: any(s.info.get("ready") and not s.claimed and s.keeper_alive
                                       for s in pool.slots(key)), "a spare VM to be ready", args.wait, 0.05)
            except wait.WaitTimeout as e:
                raise RunvmError(f"{e} (see {pool.POOL_DIR}/keeper-failures.log)") from None
        print(json.dumps({"key": key, "spares": _listing(key)}))
        return 0
    if args.action == "list":
        json.dump(_listing(None), sys.stdout)
        sys.stdout.write("\n")
        return 0
    print(json.dumps({"removed": pool.prune(drain=args.action == "drain")}))
    return 0


def _listing(key: str | None) -> list[dict[str, object]]:
    return [{"slot": str(s.dir), "ready": bool(s.info.get("ready")), "claimed_by": s.info.get("claimed_by"),
             "keeper_alive": s.keeper_alive, "qemu_alive": s.qemu_alive, "owned_pids": pool.owned_pids(s)}
            for s in pool.slots(key)]
