"""harness/hostcgroup.py: the layout from mountinfo, cgroupsPath per driver, and readings on v1 and v2 trees."""

from __future__ import annotations

from pathlib import Path

from harness import hostcgroup
from harness.waiting import poll

V1 = """31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / {root}/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
34 31 0:31 / {root}/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / {root}/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / {root}/pids rw,relatime - cgroup cgroup rw,pids
41 31 0:38 / {root}/unified rw,relatime - cgroup2 cgroup2 rw
"""
V2 = "30 23 0:27 / {root} rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate\n"
CID = "ab" * 32


def _write(d: Path, files: dict[str, str]) -> None:
    d.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (d / name).write_text(text + "\n")


def test_cgroups_path_per_driver() -> None:
    assert hostcgroup.cgroups_path(CID) == f"/docker/{CID}"
    assert hostcgroup.cgroups_path(CID, parent="/mine/sub") == f"/mine/sub/{CID}"
    assert hostcgroup.cgroups_path(CID, driver="systemd") == f"/system.slice/docker-{CID}.scope"
    nested = hostcgroup.cgroups_path(CID, driver="systemd", parent="a-b.slice")
    assert nested == f"/a.slice/a-b.slice/docker-{CID}.scope"


def test_v1_layout_and_reading(tmp_path: Path) -> None:
    lay = hostcgroup.layout(V1.format(root=tmp_path))
    assert lay.version == 1
    assert lay.mounts["cpuacct"][0] == tmp_path / "cpu,cpuacct"
    _write(tmp_path / "memory" / "docker" / CID, {
        "memory.limit_in_bytes": str(64 << 20), "memory.memsw.limit_in_bytes": "9223372036854771712",
        "memory.usage_in_bytes": "1000", "memory.max_usage_in_bytes": str(64 << 20),
        "memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 1"})
    _write(tmp_path / "cpu,cpuacct" / "docker" / CID, {
        "cpu.cfs_quota_us": "50000", "cpu.cfs_period_us": "100000", "cpu.shares": "512", "cpuacct.usage": "42"})
    _write(tmp_path / "cpuset" / "docker" / CID, {"cpuset.cpus": "0"})
    _write(tmp_path / "pids" / "docker" / CID, {"pids.max": "max", "pids.current": "3"})
    r = hostcgroup.read(CID, lay=lay)
    assert r.found and r.version == 1 and not r.missing
    assert (r.memory_limit, r.memory_swap_limit, r.memory_peak, r.oom_kills) == (64 << 20, None, 64 << 20, 1)
    assert (r.cpu_quota_cpus, r.cpu_shares, r.cpu_usage_ns, r.cpuset_cpus) == (0.5, 512, 42, "0")
    assert (r.pids_max, r.pids_current) == (None, 3)
    assert hostcgroup.limits(r) == {"memory": "64 MiB", "memory_swap": "unlimited", "cpus": "0.5 CPU",
                                    "cpu_shares": "512", "cpuset_cpus": "0", "pids": "unlimited"}


def test_v2_layout_and_reading(tmp_path: Path) -> None:
    lay = hostcgroup.layout(V2.format(root=tmp_path), controllers={"memory", "cpu", "cpuset", "pids"})
    assert lay.version == 2 and lay.mounts["memory"][0] == tmp_path
    _write(tmp_path / "system.slice" / f"docker-{CID}.scope", {
        "memory.max": str(64 << 20), "memory.swap.max": "0", "memory.current": "10", "memory.peak": "20",
        "memory.events": "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1", "cpu.max": "100000 100000",
        "cpu.weight": "59", "cpu.stat": "usage_usec 7\nuser_usec 5",
        "cpuset.cpus.effective": "0-1", "pids.max": "16", "pids.current": "2"})
    r = hostcgroup.read(CID, driver="systemd", lay=lay)
    assert r.found and not r.missing
    assert (r.memory_limit, r.memory_swap_limit, r.memory_usage, r.memory_peak) == (64 << 20, 64 << 20, 10, 20)
    assert (r.cpu_quota_cpus, r.cpu_usage_ns, r.pids_max, r.cpuset_cpus) == (1.0, 7000, 16, "0-1")
    assert r.cpu_weight == 59 and r.cpu_shares is None  # runc 1.3 writes 59 for --cpu-shares 512
    assert hostcgroup.limits(r)["cpu_shares"] == "weight 59"


def test_absent_cgroup_is_not_found(tmp_path: Path) -> None:
    r = hostcgroup.read(CID, lay=hostcgroup.layout(V1.format(root=tmp_path)))
    assert not r.found
    assert hostcgroup.limits(r) == {"cgroup": "not found at the container's cgroupsPath"}


def test_meanings() -> None:
    assert hostcgroup.describe_limit(None) == "unlimited"
    assert hostcgroup.describe_limit(hostcgroup.host_ram_bytes()) == "the host's RAM"
    assert hostcgroup.describe_limit(256 << 20) == "256 MiB"
    assert hostcgroup.stats_memory({"memory_stats": {"usage": 100, "limit": 7, "stats": {"total_inactive_file": 40}}}) \
        == (7, 60)
    assert hostcgroup.stats_pids({"pids_stats": {"current": 2}}) == (None, 2)


def test_poll_reports_a_timeout() -> None:
    now = [0.0]

    def sleep(s: float) -> None:
        now[0] += s

    timed_out = poll(lambda: 1, lambda v: v > 1, timeout=1, interval=0.25, clock=lambda: now[0], sleep=sleep)
    assert timed_out.timed_out and timed_out.value == 1 and timed_out.probes == 5
    values = iter([0, 0, 3])
    reached = poll(lambda: next(values), lambda v: v > 1, timeout=1, interval=0.25, clock=lambda: now[0], sleep=sleep)
    assert reached.reached and reached.value == 3 and reached.probes == 3
