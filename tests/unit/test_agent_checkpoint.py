"""What the agent tells CRIU, on the host: mountinfo parsing, which mounts are external and where they come from
in the new VM, the dump's arguments and its freeze/kill/thaw order, a restore refused for a terminal mismatch,
and the errors quoted from CRIU's log."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from runtime.agent import checkpoint
from runtime.agent.cgroups import Cgroup
from runtime.agent.process import ProcessError, Stdio

MOUNTINFO = """\
200 150 0:50 /rootfs / rw,relatime master:1 - 9p share rw,trans=virtio
201 200 0:51 / /proc rw,nosuid - proc proc rw
202 200 0:50 /hosts /etc/hosts rw,relatime - 9p share rw
203 200 0:50 /vol\\040one /data ro,relatime - 9p share ro
204 200 0:30 /c /sys/fs/cgroup/memory ro,nosuid - cgroup cgroup rw,memory
"""


def test_mountinfo_lines_and_their_escapes() -> None:
    mounts = checkpoint.parse_mountinfo(MOUNTINFO)
    assert [m.mountpoint for m in mounts] == ["/", "/proc", "/etc/hosts", "/data", "/sys/fs/cgroup/memory"]
    root = mounts[0]
    assert (root.mount_id, root.parent_id, root.root, root.fstype, root.source) == (200, 150, "/rootfs", "9p", "share")
    assert mounts[3].root == "/vol one" and mounts[3].options == ["ro", "relatime"]
    assert checkpoint._externals(mounts) == {
        "/etc/hosts": {"fstype": "9p", "root": "/hosts"}, "/data": {"fstype": "9p", "root": "/vol one"},
        "/sys/fs/cgroup/memory": {"fstype": "cgroup", "root": "/c"}}  # the root is --root's, proc CRIU's


def test_external_mounts_come_from_the_new_vm_s_share_and_cgroups() -> None:
    cfg = {"spec": {"mounts": [{"destination": "/etc/hosts", "source": "hosts-key"}]},
           "rootfs": "/run/share/rootfs", "shares": {"hosts-key": "/run/share/hosts-new"}}
    cg = Cgroup([], "/docker/abc")
    assert checkpoint._external_source("/etc/hosts", {"fstype": "9p", "root": "/hosts"}, cfg, cg) == \
        "/run/share/hosts-new"
    assert checkpoint._external_source("/data", {"fstype": "9p", "root": "/vol"}, cfg, cg) == "/run/share/vol"
    assert checkpoint._external_source("/sys/fs/cgroup/memory", {"fstype": "cgroup", "root": "/"}, cfg, cg) == \
        "/sys/fs/cgroup/memory/docker/abc"
    assert checkpoint._external_source("/sys/fs/cgroup/unified", {"fstype": "cgroup2", "root": "/"}, cfg, cg) == \
        "/sys/fs/cgroup/unified"


class FakeCgroup:
    path = "/docker/abc"
    dirs = {"freezer": "/sys/fs/cgroup/freezer/docker/abc"}

    def __init__(self, log: list[str], frozen: bool = False) -> None:
        self.log, self.frozen = log, frozen

    def freeze(self, frozen: bool) -> None:
        self.log.append("freeze" if frozen else "thaw")


@pytest.mark.parametrize("leave_running", [False, True])
def test_a_dump_freezes_flushes_dumps_then_kills_or_not_and_thaws(
        leave_running: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log: list[str] = []
    args: list[list[str]] = []
    monkeypatch.setattr(checkpoint, "mountinfo", lambda pid: checkpoint.parse_mountinfo(MOUNTINFO))
    monkeypatch.setattr(checkpoint, "_stdio_files", lambda pid: {"1": "pipe:[77]"})
    monkeypatch.setattr(checkpoint, "_frozen", lambda cg: cg.frozen)
    def run(a: list[str], path: str, what: str) -> None:
        log.append("dump")
        args.append(a)

    monkeypatch.setattr(checkpoint, "_run", run)
    monkeypatch.setattr(checkpoint, "_kill_all", lambda pid, cg: log.append(f"kill {pid}"))
    cg = FakeCgroup(log)
    info = checkpoint.dump(42, str(tmp_path / "img"), cg, leave_running, {"tty": True},  # type: ignore[arg-type]
                           flush_output=lambda: log.append("flush"))
    assert log == (["freeze", "flush", "dump", "thaw"] if leave_running
                   else ["freeze", "flush", "dump", "kill 42", "thaw"])
    [a] = args
    assert a[:3] == ["dump", "--tree", "42"] and "--shell-job" in a
    assert a[a.index("--freeze-cgroup") + 1] == cg.dirs["freezer"] and "--leave-running" in a
    assert "mnt[/etc/hosts]:/etc/hosts" in a and "mnt[/proc]:/proc" not in a
    assert info["tty"] and info["stdio"] == {"1": "pipe:[77]"} and not info["root_readonly"]
    assert json.loads(json.dumps(info)) == info  # it goes into runvm.json


def test_a_failed_dump_leaves_a_paused_container_paused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log: list[str] = []
    monkeypatch.setattr(checkpoint, "mountinfo", lambda pid: [])
    monkeypatch.setattr(checkpoint, "_stdio_files", lambda pid: {})
    monkeypatch.setattr(checkpoint, "_frozen", lambda cg: True)

    def fail(*_a: Any) -> None:
        raise ProcessError("criu dump in the guest failed")

    monkeypatch.setattr(checkpoint, "_run", fail)
    with pytest.raises(ProcessError):
        checkpoint.dump(42, str(tmp_path), FakeCgroup(log), False, {})  # type: ignore[arg-type]
    assert log == []  # no freeze (it was), no kill, no thaw


def test_a_restore_with_a_different_terminal_setting_is_refused(tmp_path: Path) -> None:
    (tmp_path / checkpoint.INFO_FILE).write_text(json.dumps({"info": {"tty": True}}))
    with pytest.raises(ProcessError, match=r"taken with a terminal .* now without one"):
        checkpoint.restore(str(tmp_path), {"spec": {}}, Stdio(False), Cgroup([], "/c"), [])
    with pytest.raises(ProcessError, match=r"no usable runvm\.json"):
        checkpoint.restore(str(tmp_path / "none"), {"spec": {}}, Stdio(False), Cgroup([], "/c"), [])


def test_criu_s_errors_without_its_probe_noise(tmp_path: Path) -> None:
    log = tmp_path / "dump.log"
    log.write_text("(00.001) Error (criu/net.c:1): tun: Unable to create tun: No such device\n"
                   "(00.002) some info\n"
                   "(00.003) Error (criu/mount.c:2): mnt: No mapping for 1234:(null) mountpoint\n")
    assert checkpoint._log_errors(str(log)) == "Error (criu/mount.c:2): mnt: No mapping for 1234:(null) mountpoint"
    assert checkpoint._log_errors(str(tmp_path / "missing.log")) == ""


def test_sysctls_criu_restores_are_left_to_it(monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[str] = []

    def recording_open(path: str, mode: str = "r") -> Any:
        opened.append(path)
        return open(os.devnull, "w")  # the caller's with closes it

    monkeypatch.setattr(checkpoint, "open", recording_open, raising=False)
    checkpoint._vm_sysctls({"linux": {"sysctl": {"kernel.shmmax": "1", "kernel.hostname": "x",
                                                 "net.ipv4.ip_forward": "1"}}})
    assert opened == ["/proc/sys/net/ipv4/ip_forward"]
