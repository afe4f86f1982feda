"""A vm-shim helper (netconnect, qmp_helper) ends with the shim that started it: under Docker 28 a reconcile could
start while the VM stops and wait for its QMP socket, in the container's cgroup, after the container was gone."""

from __future__ import annotations

import subprocess
import sys

import psutil

from harness import paths
from harness.waiting import wait_for

CHILD = ("from runtime.runvm.shim.helper_main import _die_with_the_shim; _die_with_the_shim(); "
         "import time; time.sleep(60)")
PARENT = (f"import subprocess, sys, time; p = subprocess.Popen([sys.executable, '-c', {CHILD!r}]); "
          "print(p.pid, flush=True); time.sleep(1.5)")


def test_the_helper_is_killed_when_its_shim_exits() -> None:
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True, cwd=paths.REPO)
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    assert psutil.pid_exists(child)
    parent.wait(10)
    def gone() -> bool:
        try:
            return psutil.Process(child).status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True

    try:
        wait_for(gone, f"helper {child} ending with its parent", 5, interval=0.05)
    finally:
        if not gone():
            psutil.Process(child).kill()
