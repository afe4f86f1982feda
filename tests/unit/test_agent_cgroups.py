"""Guest cgroups on the host, over a directory standing in for /sys/fs/cgroup: which directory each controller's
files are in, the spare the template makes ahead, limits as runc writes them (memsw never below the limit), stats,
the freezer and the cpuset inheritance."""

from __future__ import annotations

from pathlib import Path

import pytest

from runtime.agent import cgroups, libc

LAYOUT = [{"dir": "memory", "type": "cgroup", "options": "memory"},
          {"dir": "cpu,cpuacct", "type": "cgroup", "options": "cpu,cpuacct"},
          {"dir": "cpuset", "type": "cgroup", "options": "cpuset"},
          {"dir": "pids", "type": "cgroup", "options": "pids"},
          {"dir": "freezer", "type": "cgroup", "options": "freezer"},
          {"dir": "systemd", "type": "cgroup", "options": "none,name=systemd"},
          {"dir": "unified", "type": "cgroup2", "options": ""}]


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(cgroups, "ROOT", str(tmp_path))
    for entry in LAYOUT:
        (tmp_path / entry["dir"]).mkdir()
    (tmp_path / "cpuset" / "cpuset.cpus").write_text("0-3\n")
    (tmp_path / "cpuset" / "cpuset.mems").write_text("0\n")
    return tmp_path


def test_each_controller_has_its_directory(root: Path) -> None:
    cg = cgroups.Cgroup(LAYOUT, "docker/abc/")
    assert cg.path == "/docker/abc"
    assert cg.dirs["memory"] == f"{root}/memory/docker/abc"
    assert cg.dirs["cpu"] == cg.dirs["cpuacct"] == f"{root}/cpu,cpuacct/docker/abc"
    assert cg.dirs["systemd"] == f"{root}/systemd/docker/abc" and "none" in cg.dirs
    assert "unified" not in cg.dirs


def test_create_takes_the_template_s_spare_and_fills_the_cpuset(root: Path) -> None:
    assert cgroups.Cgroup.make_spare(LAYOUT) is False  # no pid to put in it
    spare = root / "memory" / "docker" / cgroups.SPARE
    assert spare.is_dir()
    (spare / "marker").write_text("from the template")
    cg = cgroups.Cgroup(LAYOUT, "/docker/abc")
    cg.create()
    assert (root / "memory" / "docker" / "abc" / "marker").read_text() == "from the template"
    assert not spare.exists() and cg.from_spare
    assert (root / "cpuset" / "docker" / "abc" / "cpuset.cpus").read_text() == "0-3"
    assert (root / "cpuset" / "docker" / "cpuset.cpus").read_text() == "0-3"  # parents first
    other = cgroups.Cgroup(LAYOUT, "/elsewhere/x")
    other.create()
    assert not other.from_spare


def test_limits_as_runc_writes_them(root: Path) -> None:
    cg = cgroups.Cgroup(LAYOUT, "/c")
    cg.create()
    mem = root / "memory" / "c"
    (mem / "memory.limit_in_bytes").write_text("1000")
    (mem / "memory.memsw.limit_in_bytes").write_text("2000")
    order: list[str] = []
    real_set = cg.set

    def recording_set(ctrl: str, name: str, value: object) -> None:
        order.append(name)
        real_set(ctrl, name, value)

    cg.set = recording_set  # type: ignore[method-assign]
    warnings = cg.apply({"memory": {"limit": 5000, "swap": 8000, "reservation": 100},
                         "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "1"},
                         "pids": {"limit": -1}})
    assert warnings == []
    assert order[:2] == ["memory.memsw.limit_in_bytes", "memory.limit_in_bytes"]  # growing: memsw first
    assert (mem / "memory.limit_in_bytes").read_text() == "5000"
    assert (mem / "memory.soft_limit_in_bytes").read_text() == "100"
    assert (root / "cpu,cpuacct" / "c" / "cpu.cfs_quota_us").read_text() == "50000"
    assert (root / "cpuset" / "c" / "cpuset.cpus").read_text() == "1"
    assert (root / "pids" / "c" / "pids.max").read_text() == "max"
    order.clear()
    cg.apply({"memory": {"limit": 3000, "swap": 3000}})
    assert order == ["memory.limit_in_bytes", "memory.memsw.limit_in_bytes"]  # shrinking: the limit first


def test_pids_stats_and_oom_kills(root: Path) -> None:
    cg = cgroups.Cgroup(LAYOUT, "/c")
    cg.create()
    (root / "pids" / "c" / "cgroup.procs").write_text("5\n3\n")
    (root / "pids" / "c" / "sub").mkdir()
    (root / "pids" / "c" / "sub" / "cgroup.procs").write_text("9\n3\n")
    assert cg.pids() == [3, 5, 9]
    (root / "pids" / "c" / "pids.current").write_text("3\n")
    (root / "pids" / "c" / "pids.max").write_text("max\n")
    mem = root / "memory" / "c"
    for name, value in (("usage_in_bytes", "10"), ("max_usage_in_bytes", "20"), ("limit_in_bytes", "30"),
                        ("failcnt", "1"), ("stat", "cache 4\nrss 6\n")):
        (mem / f"memory.{name}").write_text(value)
    (mem / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n")
    stats = cg.stats()
    assert stats["pids"] == {"current": 3, "limit": 0}
    assert stats["memory"] == {"usage": 10, "max_usage": 20, "limit": 30, "failcnt": 1,
                               "stat": {"cache": 4, "rss": 6}}
    assert stats["cpu"]["usage"] == 0 and stats["cpu"]["percpu"] == []
    assert cg.oom_kills() == 2


def test_freeze_waits_for_the_state(root: Path) -> None:
    cg = cgroups.Cgroup(LAYOUT, "/c")
    cg.create()
    cg.freeze(True)
    assert (root / "freezer" / "c" / "freezer.state").read_text() == "FROZEN"
    cg.freeze(False)
    assert (root / "freezer" / "c" / "freezer.state").read_text() == "THAWED"


def test_hot_plugged_cpus_widen_the_cpuset_top_down(root: Path) -> None:
    cg = cgroups.Cgroup(LAYOUT, "/docker/c")
    cg.create()
    cg.widen_cpuset("0-7")
    assert (root / "cpuset" / "docker" / "cpuset.cpus").read_text() == "0-7"
    assert (root / "cpuset" / "docker" / "c" / "cpuset.cpus").read_text() == "0-7"


def test_mount_layout_skips_what_the_guest_kernel_lacks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cgroups, "ROOT", str(tmp_path))
    calls: list[tuple[str, str, str | None, str | None]] = []
    monkeypatch.setattr(libc, "mount", lambda src, dst, fstype, flags=0, data=None:
                        calls.append((src, dst, fstype, data)))
    mounted = cgroups.mount_layout([{"dir": "memory", "type": "cgroup", "options": "rw,memory"},
                                    {"dir": "no_such", "type": "cgroup", "options": "rw,no_such_controller"},
                                    {"dir": "unified", "type": "cgroup2", "options": ""}])
    assert [e["dir"] for e in mounted] == ["memory", "unified"]
    assert calls[0][2] == "tmpfs"  # the root first, not being a mount point
    assert ("cgroup", f"{tmp_path}/memory", "cgroup", "memory") in calls


def test_a_pinned_cpuset_outside_its_parents_widens_the_parents_only(root: Path) -> None:
    """The template made /docker with the VM's CPUs then; a later update pins the container to a CPU the VM has
    now: the parents take the root's CPUs first (v1 refuses a set outside its parent's), the container its own."""
    cg = cgroups.Cgroup(LAYOUT, "/docker/c")
    cg.create()
    (root / "cpuset" / "docker" / "cpuset.cpus").write_text("0")
    cg.apply({"cpu": {"cpus": "1"}})
    assert (root / "cpuset" / "docker" / "cpuset.cpus").read_text() == "0-3"
    assert (root / "cpuset" / "docker" / "c" / "cpuset.cpus").read_text() == "1"
    cg.widen_cpuset("0-7", ancestors_only=True)
    assert (root / "cpuset" / "docker" / "cpuset.cpus").read_text() == "0-7"
    assert (root / "cpuset" / "docker" / "c" / "cpuset.cpus").read_text() == "1"
