"""runvm's own: what runvm still holds on this host for containers (all under --root when no id is given)"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from runtime.runvm.state import check_id, proc_start_time


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("ids", nargs="*", metavar="ID")
    p.add_argument("--json", action="store_true", help="a JSON list of strings, one per finding")


def _comm(pid: int) -> str:
    import psutil  # only for a process still there: a leftover (off the hot create/start path anyway)

    try:
        return str(psutil.Process(pid).name())
    except psutil.Error:
        return "?"


def findings(store: object, container_id: str) -> list[str]:
    """A removed container has none of these: its state and socket dirs, its vm-shim and QEMU alive, mounts of
    its dirs. A suite asks after `docker rm`; runvm knows its own artefacts better than any outside scan."""
    found: list[str] = []
    state_dir = store.dir(container_id)  # type: ignore[attr-defined]
    sock_dir = store.sock_dir(container_id)  # type: ignore[attr-defined]
    if state_dir.exists():
        found.append(f"state dir {state_dir} of container {container_id[:12]}")
        try:
            st = store.load(container_id)  # type: ignore[attr-defined]
        except Exception as e:  # a corrupt or half-written state is a leftover too, already reported
            found.append(f"unreadable state of container {container_id[:12]}: {e}")
        else:
            if st.alive():
                found.append(f"vm-shim {st.pid} ({_comm(st.pid)}) of container {container_id[:12]} still running")
            if st.qemu_pid and proc_start_time(st.qemu_pid) is not None and _comm(st.qemu_pid).startswith("qemu"):
                found.append(f"QEMU {st.qemu_pid} of container {container_id[:12]} still running")
    if sock_dir.exists():
        found.append(f"socket dir {sock_dir} of container {container_id[:12]}")
    mine = (str(state_dir), str(sock_dir))
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4]
        if point.startswith(mine):
            found.append(f"mount {point} of container {container_id[:12]}")
    return found


def run(args: argparse.Namespace, ctx: object) -> int:
    store = ctx.store  # type: ignore[attr-defined]
    ids = [check_id(i) for i in args.ids] or store.ids()
    found = [line for cid in ids for line in findings(store, cid)]
    if args.json:
        json.dump(found, sys.stdout)
        sys.stdout.write("\n")
    else:
        for line in found:
            print(line)
    return 0
