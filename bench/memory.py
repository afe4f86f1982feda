"""Host memory per idle container: K idle containers per runtime, PSS of every host process that exists for
each of them (containerd's shim and everything below it: the workload for runc; vm-shim, QEMU and stand-ins for
runvm, plus the QEMU of a VM taken from the pool, which a keeper started; sandbox and gofer for runsc). Spares
waiting in the pool belong to no container and are not counted. PSS splits pages shared between containers
(runvm's template RAM, binaries) fairly among them, so K matters: it is printed."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from bench.common import DEFAULT_RUNTIMES, LABEL, available, client, image, table
from harness import procs
from harness.cleanup import shims_by_container
from runtime.runvm.vm import pool

MiB = 1024 * 1024


def pss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _pooled_qemus() -> dict[str, int]:
    """container id -> QEMU pid for VMs taken from runvm's pool. A keeper started them, so they hang below
    whichever container's shim happened to start that keeper: runvm's state says whose they are."""
    import json

    found = {}
    for path in Path("/run/docker").glob("runtime-*/moby/*/state.json"):
        try:
            state = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if (state.get("extra") or {}).get("pool_slot") and state.get("qemu_pid"):
            found[path.parent.name] = int(state["qemu_pid"])
    return found


def measure(runtime: str, count: int, settle_s: float) -> dict[str, object]:
    c = client()
    containers = []
    try:
        for _ in range(count):
            containers.append(c.containers.run(image(), ["sleep", "3600"], runtime=runtime, detach=True,
                                               labels=LABEL))
        time.sleep(settle_s)
        shims = shims_by_container()
        pooled = _pooled_qemus()
        elsewhere = set(pooled.values()) | pool.pids()  # counted for their own container, or for none
        totals, runtime_only = [], []
        for ctr in containers:
            shim = shims.get(ctr.id)
            if shim is None:
                continue
            below = [p for p in procs.descendants(shim) if p not in elsewhere]
            if ctr.id in pooled:
                below.append(pooled[ctr.id])
            totals.append(pss_kib(shim) + sum(pss_kib(p) for p in below))
            runtime_only.append(sum(pss_kib(p) for p in below))
        return {"runtime": runtime, "pss_mib": round(sum(totals) / len(totals) / 1024, 1) if totals else None,
                "without_containerd_shim_mib": round(sum(runtime_only) / len(runtime_only) / 1024, 1)
                if runtime_only else None, "containers": len(totals)}
    finally:
        for ctr in c.containers.list(all=True, filters={"label": "vmparity.bench=1"}):
            ctr.remove(force=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--containers", type=int, default=4)
    ap.add_argument("--settle", type=float, default=5.0, help="seconds to let the containers go idle")
    ap.add_argument("--runtime", action="append", default=None)
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        raise SystemExit("bench.memory reads other processes' smaps: run as root")
    rows = [measure(r, args.containers, args.settle) for r in available(args.runtime or DEFAULT_RUNTIMES)]
    print(f"host memory per idle container (PSS, {args.containers} idle containers per runtime)")
    print(table(rows, "runc", "pss_mib", "MiB"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
