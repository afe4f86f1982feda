"""Relaying a guest OOM kill to Docker, which learns about OOM only from the container's memory cgroup on the
host (containerd's eventfd on memory.oom_control), where the VM lives.

A sacrificial process joins that cgroup with oom_score_adj 1000, the limit is lowered to just above current
usage, the victim allocates past it and is the one killed, and the limit is restored: containerd sees a real
OOM event on the container's cgroup, as it would under runc. (A child cgroup would not do: v1 notifies only the
cgroup that hit its limit and its descendants.)"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

ROOT = Path("/sys/fs/cgroup/memory")
HEADROOM = 4 << 20


def signal_host_cgroup(cgroup_path: str) -> bool:
    mem = ROOT / cgroup_path.strip("/")
    limit_file = mem / "memory.limit_in_bytes"
    if not limit_file.exists():
        return False
    original = limit_file.read_text().strip()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the victim: join the cgroup, become the preferred OOM target, wait for the go, allocate
        os.close(w)
        try:
            Path(f"/proc/{os.getpid()}/oom_score_adj").write_text("1000")
            (mem / "cgroup.procs").write_text(str(os.getpid()))
            os.read(r, 1)
            hog = []
            while True:
                hog.append(bytearray(1 << 20))
        finally:
            os._exit(0)
    os.close(r)
    try:
        time.sleep(0.05)
        usage = int((mem / "memory.usage_in_bytes").read_text())
        limit_file.write_text(str(usage + HEADROOM))
        os.write(w, b"x")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            done, _status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            time.sleep(0.01)
        else:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
    finally:
        os.close(w)
        with contextlib.suppress(OSError):
            limit_file.write_text(original)
    return True
