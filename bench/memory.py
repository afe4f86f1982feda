"""Host memory per idle container: K idle containers per runtime, PSS of every host process that exists for
each of them (containerd's shim and everything below it: the workload for runc; vm-shim, QEMU and stand-ins for
runvm, plus the QEMU of a VM taken from the pool, which a keeper started; sandbox and gofer for runsc). Spares
waiting in the pool belong to no container and are not counted. PSS splits pages shared between containers
(runvm's template RAM, binaries) fairly among them, so K matters: it is printed."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from bench.common import DEFAULT_RUNTIMES, LABEL, available, client, image, table
from harness import procs
from harness.cleanup import shims_by_container

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
    found = {}
    for path in Path("/run/docker").glob("runtime-*/moby/*/state.json"):
        try:
            state = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if (state.get("extra") or {}).get("pool_slot") and state.get("qemu_pid"):
            found[path.parent.name] = int(state["qemu_pid"])
    return found


def _pool_owned() -> set[int]:
    """Keepers and unclaimed spare VMs, as `runvm pool list` reports them: bench asks runvm, never imports it."""
    exe = Path(sys.executable).with_name("runvm")
    if not exe.exists():
        return set()
    out = subprocess.run([str(exe), "pool", "list"], capture_output=True, text=True, timeout=30, check=True)
    return {int(pid) for spare in json.loads(out.stdout) for pid in spare.get("owned_pids", [])}


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
        elsewhere = set(pooled.values()) | _pool_owned()  # counted for their own container, or for none
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


def _anon_kib(pid: int, only: str | None = None, skip: str | None = None) -> int:
    """Anonymous KiB of a process, of the mappings whose name contains `only` (or all but `skip`)."""
    total, name = 0, ""
    try:
        lines = Path(f"/proc/{pid}/smaps").read_text().splitlines()
    except OSError:
        return 0
    for line in lines:
        head = line.split(maxsplit=5)
        if head and "-" in head[0] and len(head) >= 5 and all(c in "0123456789abcdef-" for c in head[0]):
            name = head[5] if len(head) > 5 else ""
        elif (line.startswith("Anonymous:") and (only is None or only in name)
              and (skip is None or skip not in name)):
            total += int(line.split()[1])
    return total


def _host_memory(cid: str) -> dict[str, int]:
    d = Path("/sys/fs/cgroup/memory/docker") / cid
    stat = dict(line.split() for line in (d / "memory.stat").read_text().splitlines())
    return {"usage": int((d / "memory.usage_in_bytes").read_text()),
            "peak": int((d / "memory.max_usage_in_bytes").read_text()),
            "limit": int((d / "memory.limit_in_bytes").read_text()),
            "rss": int(stat["rss"]), "cache": int(stat["cache"]),
            "procs": len((d / "cgroup.procs").read_text().split())}


def overhead(runtime: str, settle_s: float, hogs: int, limit_mib: int = 64) -> dict[str, object]:
    """What the host charges a runvm container beyond what its guest cgroup uses (the allowance runvm adds to a
    memory limit on the host, runtime/runvm/limits.py): an idle `-m 64m` container's host cgroup, split into
    QEMU's dirtied guest RAM (anonymous pages in the RAM mapping: what the guest wrote since the restore), QEMU's
    own anonymous memory (heap, translation cache, stacks) and the vm-shim's; then the host cgroup's peak while a
    `docker exec`'d allocator runs into the guest limit `hogs` times (and is OOM-killed in the guest)."""
    c = client()
    ctr = c.containers.run(image(), ["sleep", "3600"], runtime=runtime, detach=True, labels=LABEL,
                           network_mode="none", mem_limit=f"{limit_mib}m")
    try:
        time.sleep(settle_s)
        host = _host_memory(ctr.id)
        state = ctr.attrs["State"]
        shim_pid = int(c.api.inspect_container(ctr.id)["State"]["Pid"])
        qemu = [p for p in procs.descendants(shim_pid) if Path(f"/proc/{p}/comm").read_text().startswith("qemu")]
        guest = int(ctr.exec_run(["cat", "/sys/fs/cgroup/memory/memory.usage_in_bytes"]).output.decode().strip())
        ram_mark = "memory" if runtime != "runvm-cold" else "ram0"
        dirty = sum(_anon_kib(q, only="/templates/") for q in qemu) if runtime != "runvm-cold" else None
        own = sum(_anon_kib(q, skip="/templates/") for q in qemu)
        shim = _anon_kib(shim_pid)
        del state, ram_mark
        (Path("/sys/fs/cgroup/memory/docker") / ctr.id / "memory.max_usage_in_bytes").write_text("0")
        codes = [ctr.exec_run(["dd", "if=/dev/zero", "of=/dev/null", f"bs={limit_mib + 36}M", "count=1"]).exit_code
                 for _ in range(hogs)]
        time.sleep(2)  # the OOM relay (runtime/runvm/oom.py) runs after the guest's OOM
        after = _host_memory(ctr.id)
        return {"runtime": runtime, "idle_host_mib": round(host["usage"] / MiB, 1),
                "idle_guest_cgroup_mib": round(guest / MiB, 1),
                "idle_overhead_mib": round((host["usage"] - guest) / MiB, 1),
                "qemu_guest_ram_dirty_mib": round(dirty / 1024, 1) if dirty is not None else "-",
                "qemu_own_anon_mib": round(own / 1024, 1), "shim_anon_mib": round(shim / 1024, 1),
                "hog_exit_codes": codes, "peak_with_hogs_mib": round(after["peak"] / MiB, 1),
                "peak_beyond_limit_mib": round(after["peak"] / MiB - limit_mib, 1),
                "host_limit_mib": round(after["limit"] / MiB, 1) if after["limit"] < 1 << 60 else "unlimited"}
    finally:
        ctr.remove(force=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--containers", type=int, default=4)
    ap.add_argument("--settle", type=float, default=5.0, help="seconds to let the containers go idle")
    ap.add_argument("--runtime", action="append", default=None)
    ap.add_argument("--overhead", action="store_true",
                    help="instead: what the host charges a -m 64m runvm container beyond its guest cgroup")
    ap.add_argument("--hogs", type=int, default=3, help="with --overhead: allocators run into the limit")
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        raise SystemExit("bench.memory reads other processes' smaps: run as root")
    if args.overhead:
        for r in available(args.runtime or ["runvm", "runvm-tb32", "runvm-pool", "runvm-cold"]):
            print(overhead(r, args.settle, args.hogs))
        return 0
    rows = [measure(r, args.containers, args.settle) for r in available(args.runtime or DEFAULT_RUNTIMES)]
    print(f"host memory per idle container (PSS, {args.containers} idle containers per runtime)")
    print(table(rows, "runc", "pss_mib", "MiB"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
