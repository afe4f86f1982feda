"""Relaying a guest OOM kill to Docker, which learns about OOM only from the container's memory cgroup on the
host (containerd's eventfd on memory.oom_control), where the VM lives.

A sacrificial process joins that cgroup with oom_score_adj 1000 and first grows larger than QEMU (the OOM killer
weighs resident size, and QEMU's includes the template pages charged elsewhere; lowering QEMU's own score would
need CAP_SYS_RESOURCE, which this host's bounding set lacks). QEMU is stopped for the moment, so the victim is
the only one allocating; the limit is lowered to just above current usage, the victim allocates past it and is
the one killed, and everything is put back: containerd sees a real OOM event on the container's cgroup, as
under runc. (A child cgroup would not do: v1 notifies only the cgroup that hit its limit and its descendants.)"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import time
from pathlib import Path

ROOT = Path("/sys/fs/cgroup/memory")
HEADROOM = 4 << 20


def _rss(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, IndexError, ValueError):
        return 0


def signal_host_cgroup(cgroup_path: str, protect: tuple[int, ...] = ()) -> bool:
    mem = ROOT / cgroup_path.strip("/")
    limit_file = mem / "memory.limit_in_bytes"
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
            (mem / "cgroup.procs").write_text(str(os.getpid()))
            ballast = bytearray(prefill)  # zero-filled, so resident
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
        usage = int((mem / "memory.usage_in_bytes").read_text())
        limit_file.write_text(str(usage + HEADROOM))
        os.write(go_w, b"x")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if os.waitpid(pid, os.WNOHANG)[0]:
                return True
            time.sleep(0.01)
        return False
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
