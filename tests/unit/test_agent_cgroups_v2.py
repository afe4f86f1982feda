"""The guest's cgroups on the unified hierarchy: the files runc writes on a v2 host, from the same resources, and
the host's layout the guest mirrors (v2 on a v2 host, v1 on a v1 one, v2 when asked)."""

from __future__ import annotations

from pathlib import Path

import pytest

from runtime.agent import cgroups, cgroups_v2
from runtime.runvm import cgroups as host_cgroups

V1_HOST = """\
30 25 0:26 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755
31 30 0:27 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw,nsdelegate
33 30 0:29 / /sys/fs/cgroup/memory rw,nosuid - cgroup cgroup rw,memory
"""
V2_HOST = "30 25 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n"


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(cgroups_v2, "ROOT", str(tmp_path))
    (tmp_path / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    (tmp_path / "cgroup.subtree_control").write_text("")
    return tmp_path


def test_the_guest_mirrors_the_host_s_version(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(host_cgroups.GUEST_CGROUP_ENV, raising=False)
    assert host_cgroups.layout(V2_HOST) == host_cgroups.V2_LAYOUT
    assert [e["dir"] for e in host_cgroups.layout(V1_HOST)] == ["unified", "memory"]
    assert host_cgroups.layout(V1_HOST, guest="v2") == host_cgroups.V2_LAYOUT
    monkeypatch.setenv(host_cgroups.GUEST_CGROUP_ENV, "v2")
    assert host_cgroups.layout(V1_HOST) == host_cgroups.V2_LAYOUT
    assert cgroups.unified(host_cgroups.V2_LAYOUT) and not cgroups.unified(host_cgroups.layout(V1_HOST, "host"))
    assert isinstance(cgroups.open_cgroup(host_cgroups.V2_LAYOUT, "/docker/x"), cgroups_v2.Cgroup2)


def test_conversions_are_runc_s() -> None:
    # runc 1.3's: Docker's default shares are v2's default weight; 512 is what runc 1.3.6 wrote on the cgroup2 host
    assert cgroups_v2.cpu_weight(1024) == 100 and cgroups_v2.cpu_weight(512) == 59
    assert cgroups_v2.cpu_weight(2) == 1 and cgroups_v2.cpu_weight(262144) == 10000 and cgroups_v2.cpu_weight(0) == 0
    assert cgroups_v2.io_weight(10) == 1 and cgroups_v2.io_weight(1000) == 10000
    mib = 1 << 20
    assert cgroups_v2.swap_max(64 * mib, 64 * mib) == "0"  # --memory-swap equal to -m: no swap
    assert cgroups_v2.swap_max(64 * mib, 128 * mib) == str(64 * mib)
    assert cgroups_v2.swap_max(64 * mib, -1) == "max"
    assert cgroups_v2.swap_max(64 * mib, None) is None


def test_create_passes_controllers_down_and_limits_land_in_v2_files(root: Path) -> None:
    cg = cgroups_v2.Cgroup2("/docker/abc")
    cg.create()
    assert (root / "docker").is_dir() and (root / "docker/abc").is_dir()
    # the fake filesystem keeps the last write: each controller was enabled one at a time
    assert (root / "cgroup.subtree_control").read_text().startswith("+")
    (root / "docker/abc/cpu.max").write_text("max 100000\n")
    (root / "docker/abc/memory.swap.max").write_text("max\n")
    warnings = cg.apply({"memory": {"limit": 64 << 20, "swap": 64 << 20, "reservation": 32 << 20, "kernel": 1},
                         "cpu": {"shares": 512, "quota": 50000, "cpus": "0"}, "pids": {"limit": 50}})
    d = root / "docker/abc"
    assert (d / "memory.max").read_text() == str(64 << 20)
    assert (d / "memory.swap.max").read_text() == "0"
    assert (d / "memory.low").read_text() == str(32 << 20)
    assert (d / "cpu.weight").read_text() == str(cgroups_v2.cpu_weight(512))
    assert (d / "cpu.max").read_text() == "50000 100000"
    assert (d / "cpuset.cpus").read_text() == "0"
    assert (d / "pids.max").read_text() == "50"
    assert warnings == ["kernel memory limit not applied: cgroup v2 has no kmem limit"]
    cg.apply({"memory": {"limit": -1}, "pids": {"limit": -1}})
    assert (d / "memory.max").read_text() == "max" and (d / "pids.max").read_text() == "max"


def test_stats_oom_count_and_freezer(root: Path) -> None:
    cg = cgroups_v2.Cgroup2("/c")
    cg.create()
    d = root / "c"
    (d / "memory.current").write_text("4096\n")
    (d / "memory.peak").write_text("8192\n")
    (d / "memory.max").write_text("max\n")
    (d / "memory.stat").write_text("anon 100\nfile 200\n")
    (d / "memory.events").write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n")
    (d / "cpu.stat").write_text("usage_usec 2000\nnr_throttled 4\n")
    (d / "pids.current").write_text("2\n")
    (d / "pids.max").write_text("50\n")
    (d / "cgroup.procs").write_text("7\n9\n")
    s = cg.stats()
    assert s["memory"] == {"usage": 4096, "max_usage": 8192, "limit": 0, "failcnt": 3,
                           "stat": {"anon": 100, "file": 200}}
    assert s["cpu"]["usage"] == 2_000_000 and s["cpu"]["throttling"] == {"nr_throttled": "4"}
    assert s["pids"] == {"current": 2, "limit": 50}
    assert cg.oom_kills() == 1 and cg.pids() == [7, 9]
    assert cg.woke_for_oom() and not cg.woke_for_oom()  # a later change to memory.events is not an OOM
    (d / "cgroup.events").write_text("populated 1\nfrozen 1\n")
    cg.freeze(True, timeout=1)
    assert (d / "cgroup.freeze").read_text() == "1" and cg.is_frozen()
    with pytest.raises(TimeoutError):
        cg.freeze(False, timeout=0.05)  # the kernel (here: nobody) never reported frozen 0
