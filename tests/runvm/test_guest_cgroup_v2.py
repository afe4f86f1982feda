"""runvm's guest on the unified cgroup hierarchy. On a cgroup v2 host the guest mirrors it (cgroups.layout);
this host is v1, so the runvm-cgroup2 runtime (--guest-cgroup=v2) makes a v2 guest here: the container sees
cgroup2 at /sys/fs/cgroup holding its own cgroup's files with runc's v2 values, and OOM, update, pause and stats
work through them as through the v1 ones."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest

from harness.waiting import wait_for
from tests.runvm.conftest import IMAGE, LABEL, docker_cli

pytestmark = pytest.mark.docker
RUNTIME = "runvm-cgroup2"
MiB = 1 << 20


@pytest.fixture
def v2box(dk: Any) -> Iterator[Any]:
    if RUNTIME not in (dk.info().get("Runtimes") or {}):
        pytest.fail(f"{RUNTIME} is not registered with dockerd: scripts/setup-host registers it (runtimes/runvm.yaml)")
    c = dk.containers.run(IMAGE, ["sleep", "1000"], runtime=RUNTIME, detach=True, labels=LABEL,
                          mem_limit="64m", pids_limit=50, nano_cpus=500_000_000, cpu_shares=512)
    try:
        yield c
    finally:
        with contextlib.suppress(Exception):
            c.remove(force=True)


def _sh(c: Any, script: str) -> str:
    code, out = c.exec_run(["sh", "-c", script])
    assert code == 0, out
    return out.decode().strip()


def test_the_container_sees_cgroup2_with_runc_s_v2_values(v2box: Any) -> None:
    mounts = _sh(v2box, "grep ' /sys/fs/cgroup ' /proc/self/mounts")
    assert mounts.split()[2] == "cgroup2", mounts
    files = dict(line.split("=", 1) for line in _sh(v2box, "for f in memory.max memory.swap.max pids.max cpu.max "
                                                           "cpu.weight; do echo $f=$(cat /sys/fs/cgroup/$f); done"
                                                     ).splitlines())
    # as runc writes them on a v2 host for -m 64m (swap total 128m), --pids-limit 50, --cpus 0.5, --cpu-shares 512
    assert files == {"memory.max": str(64 * MiB), "memory.swap.max": str(64 * MiB), "pids.max": "50",
                     "cpu.max": "50000 100000", "cpu.weight": "59"}
    assert "memory" in _sh(v2box, "cat /sys/fs/cgroup/cgroup.controllers").split()
    assert not _sh(v2box, "ls /sys/fs/cgroup | grep -c '^memory.limit_in_bytes$' || true").strip("0\n")


def test_update_pause_and_stats_go_through_the_v2_files(v2box: Any) -> None:
    done = docker_cli("update", "-m", "96m", "--memory-swap", "192m", "--pids-limit", "80", v2box.id)
    assert done.returncode == 0, done.stderr
    assert _sh(v2box, "cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max").split() == [str(96 * MiB), "80"]
    v2box.pause()
    try:
        v2box.reload()
        assert v2box.status == "paused"
    finally:
        v2box.unpause()
    assert _sh(v2box, "echo alive") == "alive"
    stats = v2box.stats(stream=False)
    assert stats["memory_stats"].get("usage", 0) > 0, stats["memory_stats"]
    assert stats["pids_stats"].get("current", 0) >= 1, stats["pids_stats"]


def test_an_oom_kill_in_a_v2_guest_is_reported_as_under_runc(dk: Any) -> None:
    c = dk.containers.run(IMAGE, ["sh", "-c", "x=$(head -c 200m /dev/zero | tr '\\0' a); echo survived"],
                          runtime=RUNTIME, detach=True, labels=LABEL, mem_limit="32m", memswap_limit="32m")
    try:
        status = c.wait(timeout=120)
        c.reload()
        assert c.attrs["State"]["OOMKilled"] is True, (status, c.logs())
        assert status["StatusCode"] == 137
        assert b"survived" not in c.logs()
    finally:
        c.remove(force=True)
    wait_for(lambda: not dk.containers.list(all=True, filters={"id": c.id}), "the container gone", 30)
