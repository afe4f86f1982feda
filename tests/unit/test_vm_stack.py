"""A stack that is a machine of its own (kind vm): never part of `--stack all` here, the host stack on its own
machine, reached only through `vmparity remote`, booted with the unified hierarchy and no network, and a killed
run's machine removed by the next."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from harness import cli, procs, stack_data, stacks
from harness.vmhost import image, machine


@pytest.fixture
def on_machine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    marker = tmp_path / "stack"
    marker.write_text("cgroup2\n")
    monkeypatch.setattr(stack_data, "THIS_MACHINE", marker)


def test_the_cgroup2_stack_is_a_vm_with_the_baseline_and_no_runvm() -> None:
    s = stack_data.get("cgroup2")
    assert s.kind == stack_data.VM and "linux-image-amd64" in s.packages and "python3-pytest" in s.packages
    assert s.runtimes == ("runc", "crun", "runsc") and s.cpus and s.memory_mib and s.disk_gib
    assert "cgroup2" not in stack_data.local_stacks() and not s.local
    assert cli._stacks_to_run(["all"]) == [n for n in stack_data.load() if n != "cgroup2"]


def test_from_here_it_is_reached_only_through_remote() -> None:
    with pytest.raises(SystemExit, match="vmparity remote cgroup2"):
        stacks.endpoint(stack_data.get("cgroup2"))
    with pytest.raises(SystemExit, match="kind host, reached from here"):
        cli.main(["remote", "debian12"])


def test_on_its_own_machine_it_is_the_host_stack(on_machine: None) -> None:
    assert stack_data.this_machine() == "cgroup2"
    assert stack_data.host_stack().name == "cgroup2" and stack_data.get("cgroup2").local
    assert stack_data.local_stacks() == ["cgroup2"]


def test_the_machine_boots_cgroup_v2_only_without_a_network(tmp_path: Path) -> None:
    s = stack_data.get("cgroup2")
    img = image.Image(tmp_path / "image-k", {})
    argv = machine.qemu_argv(s, img, tmp_path / "o.qcow2", tmp_path / "suite.img", tmp_path / "run",
                             tmp_path / "console.log")
    cmdline = argv[argv.index("-append") + 1].split()
    assert "cgroup_no_v1=all" in cmdline and f"init={image.FIRST_PROCESS}" in cmdline
    assert f"vmparity.out={tmp_path / 'run'}" in cmdline
    assert argv[argv.index("-nic") + 1] == "none" and "-netdev" not in argv
    assert argv[argv.index("-smp") + 1] == str(s.cpus)
    assert argv[argv.index("-accel") + 1] == "tcg,thread=single"  # see qemu_argv: MTTCG crashed the guest once
    share = argv[argv.index("-virtfs") + 1]
    assert f"path={tmp_path / 'run'}" in share and "mount_tag=out" in share


def test_a_killed_remote_run_leaves_a_machine_the_next_one_removes(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(machine, "_work", lambda stack: tmp_path / "runs")
    work = tmp_path / "runs" / "r1"
    work.mkdir(parents=True)
    stand_in = subprocess.Popen(["sleep", "60"], start_new_session=True)  # stands for the orphaned QEMU
    try:
        (work / "qemu.json").write_text(json.dumps({"pid": stand_in.pid, "start": procs.start_time(stand_in.pid)}))
        done = machine.remove_leftovers(stack_data.get("cgroup2"))
        stand_in.wait(timeout=10)  # gone (already reaped by the kill's wait, hence no signal status here)
        assert procs.start_time(stand_in.pid) is None
        assert done == [f"qemu {stand_in.pid}", f"work directory {work}"] and not work.exists()
    finally:
        if stand_in.poll() is None:
            stand_in.kill()
            stand_in.wait()


def test_a_recorded_pid_now_used_by_another_process_is_left_alone(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(machine, "_work", lambda stack: tmp_path / "runs")
    work = tmp_path / "runs" / "r2"
    work.mkdir(parents=True)
    other = subprocess.Popen(["sleep", "60"])
    try:
        (work / "qemu.json").write_text(json.dumps({"pid": other.pid, "start": 1.0}))  # a start time it never had
        assert machine.remove_leftovers(stack_data.get("cgroup2")) == [f"work directory {work}"]
        assert other.poll() is None
    finally:
        other.kill()
        other.wait()
