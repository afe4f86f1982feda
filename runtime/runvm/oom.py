"""Relaying a guest OOM kill to Docker, which learns about OOM only from the container's memory cgroup on the
host (containerd's eventfd on memory.oom_control), where the VM lives.

A sacrificial process with oom_score_adj 1000 first grows larger than QEMU (the OOM killer weighs resident size,
and QEMU's includes the template pages charged elsewhere; lowering QEMU's own score would need CAP_SYS_RESOURCE,
which this host's bounding set lacks), in the root cgroup, so that its ballast is never charged to the container:
the host's limit on the container (limits.py) is never exceeded, not even for a moment. Then it joins the
container's cgroup (charges stay where they were made, v1 and v2 alike). QEMU is stopped for the moment, so the
victim is the only one allocating; the limit is lowered to just above current usage (never above the container's
own limit), the victim allocates past it and is the one killed, and everything is put back: containerd sees a
real OOM event on the container's cgroup, as under runc. (A child cgroup would not do: v1 notifies only the
cgroup that hit its limit and its descendants.)"""

from __future__ import annotations

import contextlib
import os
import select
import signal
from pathlib import Path

from runtime.runvm import wait

HEADROOM = 4 << 20
V1_UNLIMITED = 1 << 62


def _rss(pid: int) -> int:
    import psutil  # in the relay's own fork, never in the resident shim

    try:
        return int(psutil.Process(pid).memory_info().rss)
    except psutil.Error:
        return 0


def signal_host_cgroup(cgroup_path: str, protect: tuple[int, ...] = ()) -> bool:
    from runtime.runvm import cgroups

    point = cgroups.hierarchies().get("memory")
    if point is None:
        return False
    v2 = cgroups.version() == 2
    mem = Path(point) / cgroup_path.strip("/")
    limit_file = mem / ("memory.max" if v2 else "memory.limit_in_bytes")
    usage_file = mem / ("memory.current" if v2 else "memory.usage_in_bytes")
    if not limit_file.exists():
        return False
    prefill = max((_rss(p) for p in protect), default=0) + (32 << 20)
    joined_r, joined_w = os.pipe()
    go_r, go_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the victim: preferred target, in the cgroup, allocating only once told to
        try:
            os.close(joined_r)
            os.close(go_w)
            Path(f"/proc/{os.getpid()}/oom_score_adj").write_text("1000")
            cgroups.leave()
            ballast = bytearray(prefill)  # zero-filled, so resident; charged to the root cgroup
            (mem / "cgroup.procs").write_text(str(os.getpid()))
            os.write(joined_w, b"j")
            os.read(go_r, 1)
            hog = [ballast]
            while True:
                hog.append(bytearray(1 << 20))
        finally:
            os._exit(0)
    os.close(joined_w)
    os.close(go_r)
    original = limit_file.read_text().strip()
    stopped = []
    try:
        ready, _, _ = select.select([joined_r], [], [], 10)
        if not ready or os.read(joined_r, 1) != b"j":
            return False
        for p in protect:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, signal.SIGSTOP)
                stopped.append(p)
        usage = int(usage_file.read_text())
        lowered = usage + HEADROOM
        if original.isdigit() and int(original) < V1_UNLIMITED:
            lowered = min(lowered, int(original))
        limit_file.write_text(str(lowered))
        os.write(go_w, b"x")
        return bool(wait.poll(lambda: os.waitpid(pid, os.WNOHANG)[0], 10, interval=0.01))
    finally:
        with contextlib.suppress(OSError):
            limit_file.write_text(original)
        for p in stopped:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, signal.SIGCONT)
        with contextlib.suppress(ProcessLookupError, ChildProcessError):
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        os.close(joined_r)
        os.close(go_w)
