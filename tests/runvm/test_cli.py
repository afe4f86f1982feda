"""runvm's OCI command line without Docker: a hand-made bundle (busybox rootfs + edited `runc spec`), a private
--root, and the effects containerd relies on: state transitions, the pid file, exit codes, errors in --log that
leave nothing behind, and spec settings (sysctls) applied in the guest, not on the host."""

from __future__ import annotations

import calendar
import contextlib
import ctypes
import json
import os
import re
import secrets
import signal
import struct
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.runvm.conftest import TEST_CGROUP_PARENT, BundleFactory, Runvm, cmdlines, leftovers, qemu_child, wait_clean

PR_SET_CHILD_SUBREAPER = 36
IN_MODIFY, IN_CLOSE_WRITE, IN_MOVED_TO, IN_CREATE = 0x2, 0x8, 0x80, 0x100
LOOP = "while :; do sleep 0.1; done"


def unique(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


def wait_text(path: Path, text: str, timeout: float = 15) -> str:
    deadline = time.monotonic() + timeout
    while True:
        got = path.read_text(errors="replace") if path.exists() else ""
        if text in got or time.monotonic() > deadline:
            return got
        time.sleep(0.05)


def wait_exit(pid: int, timeout: float = 15) -> int | None:
    """The exit code of our (adopted) child pid, as containerd-shim would reap it; None on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.05)
    return None


@pytest.fixture
def subreaper() -> Iterator[None]:
    """Make this process a child subreaper, like containerd-shim, so the vm-shim `create` forks is adopted by us
    and its exit status (the container's exit code) can be read."""
    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    yield
    libc.prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass


def assert_nothing_left(runvm: Runvm, cid: str, cgroup_path: str | None = None, timeout: float = 10) -> None:
    left = wait_clean(lambda: leftovers(str(runvm.root), cid, cgroup_path), timeout)
    assert not left, f"{cid} left behind: {left}"


def assert_error_logged(runvm: Runvm, *words: str) -> str:
    """The last JSON line in --log is level error and names the problem (containerd shows exactly that line)."""
    lines = runvm.log_lines()
    assert lines, "nothing was written to --log"
    last = lines[-1]
    assert last.get("level") == "error", last
    msg = str(last.get("msg"))
    for w in words:
        assert w.lower() in msg.lower(), f"{w!r} not in error message {msg!r}"
    return msg


def stop_and_delete(runvm: Runvm, cid: str) -> None:
    """kill -9, wait for stopped, delete: the path that must leave nothing (forced deletes: see below)."""
    assert runvm("kill", cid, "KILL").returncode == 0, runvm.errors()
    assert runvm.wait_status(cid, "stopped")["status"] == "stopped"
    assert runvm("delete", cid).returncode == 0, runvm.errors()
    assert_nothing_left(runvm, cid)


# ---- lifecycle ------------------------------------------------------------------------------------------

def test_lifecycle_create_start_state_kill_delete(runvm: Runvm, make_bundle: BundleFactory, subreaper: None) -> None:
    """created -> running -> stopped (pid 0), the process waits for start, signals reach it, the vm-shim is the
    container pid (in linux.cgroupsPath with its QEMU) and exits 128+9 on SIGKILL; delete leaves nothing."""
    cid = unique("life")
    cgroup = f"/{TEST_CGROUP_PARENT}/{cid}"  # the fixture removes the parent (runc leaves parents too)
    bundle = make_bundle(cid, ["sh", "-c", f"trap 'echo got-term' TERM; echo started; {LOOP}"], cgroups_path=cgroup)
    pid_file = runvm.workdir / "init.pid"
    stdin_r, stdin_w = os.pipe()  # stdin a pipe, as for `docker run -i` (/dev/null: see the test below)
    try:
        rc, out, _ = runvm.create(cid, bundle, "--pid-file", str(pid_file), stdin=stdin_r)
    finally:
        os.close(stdin_r)
    assert rc == 0, runvm.errors()
    pid = int(pid_file.read_text())
    st = runvm.state(cid)
    assert (st["ociVersion"], st["id"], st["status"], st["pid"], st["bundle"]) == \
        ("1.0.2", cid, "created", pid, str(bundle))
    qemu = qemu_child(pid)
    for p in (pid, qemu):
        assert f"memory:{cgroup}\n" in Path(f"/proc/{p}/cgroup").read_text(), f"pid {p} not in {cgroup}"
    time.sleep(0.5)
    assert out.read_text() == "", "the process ran before start"

    assert runvm("start", cid).returncode == 0, runvm.errors()
    assert "started" in wait_text(out, "started")
    assert runvm.state(cid)["status"] == "running"

    again = runvm("start", cid)
    assert again.returncode != 0
    assert_error_logged(runvm, "running")
    busy = runvm("delete", cid)
    assert busy.returncode != 0
    assert_error_logged(runvm, "not stopped")
    assert runvm.state(cid)["status"] == "running"

    assert runvm("kill", cid, "15").returncode == 0
    assert "got-term" in wait_text(out, "got-term")
    assert runvm.state(cid)["status"] == "running"  # the trap handled it
    assert runvm("kill", cid, "KILL").returncode == 0
    st = runvm.wait_status(cid, "stopped")
    os.close(stdin_w)
    assert (st["status"], st["pid"]) == ("stopped", 0)
    assert wait_exit(pid) == 128 + signal.SIGKILL
    assert runvm.state(cid)["runvm"]["exit_code"] == 128 + signal.SIGKILL
    assert runvm("delete", cid).returncode == 0, runvm.errors()
    gone = runvm("state", cid)
    assert gone.returncode != 0
    assert_error_logged(runvm, "does not exist")
    assert_nothing_left(runvm, cid, cgroup)


def test_exit_status_with_stdin_devnull(runvm: Runvm, make_bundle: BundleFactory, subreaper: None) -> None:
    """containerd gives a container without -i /dev/null as stdin: after output, TERM to a trap and a SIGKILL,
    the vm-shim must still exit 137 and record it. 4 tries: runvm's stdin relay closes fd 0 twice (finish() at
    EOF, stop() at exit), which broke this 2-3 times in 4 on earlier trees whenever fd 0 had been reused."""
    bundle = make_bundle("devnull", ["sh", "-c", f"trap 'echo got-term' TERM; echo started; {LOOP}"])
    codes = []
    for _ in range(4):
        cid = unique("devnull")
        pid_file = runvm.workdir / f"{cid}.pid"
        rc, out, _ = runvm.create(cid, bundle, "--pid-file", str(pid_file))
        assert rc == 0, runvm.errors()
        pid = int(pid_file.read_text())
        assert runvm("start", cid).returncode == 0
        wait_text(out, "started")
        assert runvm("kill", cid, "TERM").returncode == 0
        wait_text(out, "got-term")
        assert runvm("kill", cid, "KILL").returncode == 0
        codes.append((wait_exit(pid), runvm.wait_status(cid, "stopped")["runvm"]["exit_code"]))
        runvm("delete", cid)
    assert codes == [(137, 137)] * 4, codes


@pytest.mark.parametrize("how", ["delete a created container", "delete --force a running one"])
def test_delete_of_a_live_container_leaves_nothing(runvm: Runvm, make_bundle: BundleFactory, how: str) -> None:
    """containerd deletes created containers (failed starts) and forces deletes: the VM, shim, state, sockets
    and the linux.cgroupsPath cgroup must all go."""
    cid = unique("live")
    rc, _, _ = runvm.create(cid, make_bundle(cid, ["sleep", "1000"]))
    assert rc == 0, runvm.errors()
    if how.startswith("delete --force"):
        assert runvm("start", cid).returncode == 0, runvm.errors()
        assert runvm("delete", "--force", cid).returncode == 0, runvm.errors()
    else:
        assert runvm("delete", cid).returncode == 0, runvm.errors()
    assert_nothing_left(runvm, cid, timeout=3)


def test_ps_lists_the_running_processes(runvm: Runvm, make_bundle: BundleFactory) -> None:
    """`ps --format json` (what `docker top` uses) gives a non-empty JSON array of live host pids for a running
    container, and [] once it stopped."""
    cid = unique("ps")
    bundle = make_bundle(cid, ["sh", "-c", LOOP])
    rc, _, _ = runvm.create(cid, bundle)
    assert rc == 0, runvm.errors()
    assert runvm("start", cid).returncode == 0, runvm.errors()
    deadline = time.monotonic() + 10
    while True:  # right after start the guest process may not have exec'd yet (see the start/TERM race test)
        ps = runvm("ps", "--format", "json", cid)
        assert ps.returncode == 0, runvm.errors()
        pids = json.loads(ps.stdout)
        assert pids and all(isinstance(p, int) and Path(f"/proc/{p}").exists() for p in pids), pids
        host_view = [cmdlines().get(p, "") for p in pids]
        if any("while :" in argv for argv in host_view) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert any("while :" in argv for argv in host_view), f"no pid shows the container's command: {host_view}"
    assert runvm("kill", cid, "9").returncode == 0
    runvm.wait_status(cid, "stopped")
    assert json.loads(runvm("ps", "--format", "json", cid).stdout) == []


@pytest.mark.parametrize("flag", ["--bundle", "-bundle", "-b"])
def test_run_exit_code_and_bundle_flag_spellings(runvm: Runvm, make_bundle: BundleFactory, flag: str) -> None:
    """`run` returns the container's exit code (3) with stdout and stderr apart; Go-style single-dash long flags
    (containerd's restore uses them) work like the double-dash ones."""
    cid = unique("run")
    bundle = make_bundle(cid, ["sh", "-c", "echo to-out; echo to-err >&2; exit 3"])
    r = runvm("run", flag, str(bundle), cid)
    assert (r.returncode, r.stdout, r.stderr) == (3, "to-out\n", "to-err\n"), runvm.errors()
    assert_nothing_left(runvm, cid)


def test_pid_file_is_written_atomically_with_digits_only(runvm: Runvm, make_bundle: BundleFactory) -> None:
    """containerd treats the pid file's appearance as "create done": it must appear by rename, complete,
    digits only with no newline, naming the live vm-shim."""
    cid = unique("pidf")
    bundle = make_bundle(cid, ["sleep", "1000"])
    pids = runvm.workdir / "pids"
    pids.mkdir()
    libc = ctypes.CDLL(None, use_errno=True)
    fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
    assert fd >= 0
    try:
        assert libc.inotify_add_watch(fd, str(pids).encode(), IN_MODIFY | IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE) >= 0
        rc, _, _ = runvm.create(cid, bundle, "-pid-file", str(pids / "init.pid"))
        assert rc == 0, runvm.errors()
        events = _inotify_events(fd)
    finally:
        os.close(fd)
    text = (pids / "init.pid").read_text()
    assert re.fullmatch(r"[0-9]+", text), repr(text)
    assert int(text) == runvm.state(cid)["pid"] and Path(f"/proc/{text}").exists()
    on_final = {mask for name, mask in events if name == "init.pid"}
    assert on_final == {IN_MOVED_TO}, f"init.pid was not created by a rename: {events}"
    assert sorted(p.name for p in pids.iterdir()) == ["init.pid"], "a temporary file was left behind"


def _inotify_events(fd: int) -> list[tuple[str, int]]:
    try:
        data = os.read(fd, 65536)
    except BlockingIOError:
        return []
    events, off = [], 0
    while off < len(data):
        _wd, mask, _cookie, size = struct.unpack_from("iIII", data, off)
        name = data[off + 16:off + 16 + size].rstrip(b"\0").decode()
        events.append((name, mask))
        off += 16 + size
    return events


@pytest.mark.parametrize("flag", ["--version", "-v"])
def test_version(runvm: Runvm, flag: str) -> None:
    """runc-style version lines: `<name> version X.Y.Z` first, then the OCI spec version."""
    r = runvm(flag)
    assert r.returncode == 0
    lines = r.stdout.splitlines()
    assert re.fullmatch(r"runvm version \d+\.\d+\.\d+", lines[0]), lines
    assert any(re.fullmatch(r"spec: 1\.\d+\.\d+(-\S+)?", line) for line in lines), lines


TRAP = "trap 'echo got-term; exit 0' TERM; echo ready; " + LOOP
SLOW_PATH = "PATH=" + ":".join(f"/nonexistent-{i}" for i in range(1000)) + ":/bin"


def _start_then_term(argv: list[str], cid: str, bundle: Path, workdir: Path) -> str:
    """create; start; kill TERM at once; what the process printed within 5 s."""
    out = workdir / f"{cid}.out"
    with open(out, "wb") as o:
        assert subprocess.run([*argv, "create", "--bundle", str(bundle), cid], stdin=subprocess.DEVNULL, stdout=o,
                              stderr=o, timeout=240).returncode == 0, out.read_text()
    try:
        assert subprocess.run([*argv, "start", cid], timeout=60).returncode == 0
        assert subprocess.run([*argv, "kill", cid, "TERM"], timeout=60).returncode == 0
        return wait_text(out, "got-term", timeout=5)
    finally:
        subprocess.run([*argv, "delete", "--force", cid], capture_output=True, timeout=60)


def test_sigterm_right_after_start_reaches_the_handler_like_runc(runvm: Runvm, make_bundle: BundleFactory,
                                                                  tmp_path: Path) -> None:
    """`docker run -d` then `docker stop` at once: the TERM sent right after start must reach the process's
    trap, as under runc (same bundle), not vanish and leave the stop to end in SIGKILL. The long PATH makes the
    runtime's own pre-exec PATH search measurable; runc does it at create."""
    bundle = make_bundle("early-term", ["sh", "-c", TRAP])
    spec = json.loads((bundle / "config.json").read_text())
    spec["process"]["env"] = [SLOW_PATH]
    (bundle / "config.json").write_text(json.dumps(spec))
    runc = ["runc", "--root", str(tmp_path / "runc-root")]
    assert "got-term" in _start_then_term(runc, unique("runc"), bundle, tmp_path), "baseline: runc lost the TERM"
    cid = unique("early")
    runvm.created.append(cid)
    got = _start_then_term(runvm.argv(), cid, bundle, tmp_path)
    assert "got-term" in got, f"runvm lost the TERM sent right after start; the process printed {got!r}"


# ---- errors ----------------------------------------------------------------------------------------------

def _bad_bundle(kind: str, tmp: Path, make_bundle: BundleFactory) -> tuple[Path, list[str]]:
    if kind == "malformed config.json":
        b = make_bundle("bad", ["true"])
        (b / "config.json").write_text('{"ociVersion": "1.0.2", "process": ')
        return b, ["config.json", "json"]
    if kind == "missing bundle":
        return tmp / "no-such-bundle", ["no-such-bundle", "does not exist"]
    if kind == "no config.json":
        b = tmp / "empty-bundle"
        b.mkdir()
        return b, ["config.json"]
    if kind == "no process.args":
        b = make_bundle("noargs", ["true"])
        spec = json.loads((b / "config.json").read_text())
        spec["process"]["args"] = []
        (b / "config.json").write_text(json.dumps(spec))
        return b, ["args"]
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["malformed config.json", "missing bundle", "no config.json", "no process.args"])
def test_create_with_a_bad_bundle_fails_cleanly(runvm: Runvm, make_bundle: BundleFactory, tmp_path: Path,
                                                kind: str) -> None:
    """A bad bundle: non-zero exit, an error line in --log naming the problem, no pid file, nothing left."""
    cid = unique("bad")
    bundle, words = _bad_bundle(kind, tmp_path, make_bundle)
    rc, _, _ = runvm.create(cid, bundle, "--pid-file", str(tmp_path / "x.pid"))
    assert rc != 0
    assert_error_logged(runvm, *words)
    assert not (tmp_path / "x.pid").exists()
    assert_nothing_left(runvm, cid)


@pytest.mark.parametrize("value", ["0", "lots", "4096"])
def test_a_bad_translation_cache_size_is_named(runvm: Runvm, make_bundle: BundleFactory, value: str) -> None:
    """--tb-mib comes from daemon.json's runtimeArgs: a typo fails the create naming the flag, leaving nothing."""
    cid = unique("badtb")
    r = subprocess.run(runvm.argv(f"--tb-mib={value}", "create", "--bundle", str(make_bundle(cid, ["true"])), cid),
                       capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert r.returncode != 0
    assert_error_logged(runvm, "--tb-mib", value)
    assert_nothing_left(runvm, cid)


def test_the_translation_cache_size_reaches_qemu(runvm: Runvm, make_bundle: BundleFactory, tmp_path: Path) -> None:
    cid = unique("tb")
    runvm.created.append(cid)
    pid_file = tmp_path / "tb.pid"
    r = subprocess.run(runvm.argv("--tb-mib=24", "create", "--bundle", str(make_bundle(cid, ["sleep", "30"])),
                                  "--pid-file", str(pid_file), cid),
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=240)
    assert r.returncode == 0, runvm.errors()
    cmdline = Path(f"/proc/{qemu_child(int(pid_file.read_text()))}/cmdline").read_bytes().split(b"\0")
    assert any(b"tb-size=24" in arg for arg in cmdline), cmdline
    runvm("delete", "--force", cid)
    assert_nothing_left(runvm, cid)


def _add_mount(bundle: Path, mount: dict[str, Any]) -> None:
    spec = json.loads((bundle / "config.json").read_text())
    spec["mounts"].append(mount)
    (bundle / "config.json").write_text(json.dumps(spec))


BAD_MOUNTS = {
    "bind source missing (host side)": ({"destination": "/x", "type": "bind", "source": "/nonexistent-src",
                                         "options": ["rbind"]}, ["/nonexistent-src"]),
    "unknown filesystem type (guest side)": ({"destination": "/y", "type": "bogusfs", "source": "bogus",
                                              "options": []}, ["no such device"]),
}


@pytest.mark.parametrize("kind", list(BAD_MOUNTS))
def test_create_failing_inside_the_shim_cleans_up(runvm: Runvm, make_bundle: BundleFactory, kind: str) -> None:
    """create fails after the state dir was claimed (on the host, or in the guest after the VM started):
    non-zero, the cause in --log, no pid file, and no VM, shim, state, socket dir or cgroup left. The host-side
    case races with the VM launch (runvm bug, intermittent: the cgroup can stay)."""
    cid = unique("badmnt")
    bundle = make_bundle(cid, ["true"])
    mount, words = BAD_MOUNTS[kind]
    _add_mount(bundle, mount)
    rc, _, _ = runvm.create(cid, bundle, "--pid-file", str(runvm.workdir / "x.pid"))
    assert rc != 0
    assert_error_logged(runvm, *words)
    assert not (runvm.workdir / "x.pid").exists()
    assert_nothing_left(runvm, cid)


def test_guest_side_create_error_is_one_clean_line(runvm: Runvm, make_bundle: BundleFactory) -> None:
    """containerd shows the last error line to the user as is: one line naming the container path (runc:
    `error mounting "bogus" to rootfs at "/y": ... no such device`), no traceback, no guest-internal paths."""
    cid = unique("badmnt")
    bundle = make_bundle(cid, ["true"])
    _add_mount(bundle, BAD_MOUNTS["unknown filesystem type (guest side)"][0])
    rc, _, _ = runvm.create(cid, bundle)
    assert rc != 0
    msg = assert_error_logged(runvm, "no such device")
    assert "\n" not in msg.strip() and "Traceback" not in msg, msg
    assert '"/y"' in msg or " /y" in msg, msg
    assert "/run/share" not in msg, msg


@pytest.mark.parametrize("command", ["state", "start", "kill", "delete", "pause", "resume", "ps", "exec"])
def test_unknown_id_is_an_error(runvm: Runvm, tmp_path: Path, command: str) -> None:
    """Commands on an id that was never created: non-zero, `does not exist` naming the id, nothing created."""
    cid = unique("ghost")
    extra = []
    if command == "exec":
        (tmp_path / "p.json").write_text(json.dumps({"args": ["true"], "cwd": "/", "env": []}))
        extra = ["--process", str(tmp_path / "p.json")]
    r = runvm(command, *extra, cid)
    assert r.returncode != 0
    assert_error_logged(runvm, cid, "does not exist")
    assert_nothing_left(runvm, cid)
    assert not runvm.root.exists() or list(runvm.root.iterdir()) == []


def test_delete_force_of_unknown_id_is_idempotent(runvm: Runvm) -> None:
    """containerd retries deletes: `delete --force` of a missing id succeeds and creates nothing."""
    cid = unique("ghost")
    assert runvm("delete", "--force", cid).returncode == 0
    assert runvm.errors() == []
    assert_nothing_left(runvm, cid)


def test_invalid_id_is_rejected(runvm: Runvm, make_bundle: BundleFactory) -> None:
    """An id that is not a plain name (path traversal) is refused before anything is created."""
    bundle = make_bundle("invalid", ["true"])
    rc, _, _ = runvm.create("../escape", bundle)
    assert rc != 0
    assert_error_logged(runvm, "id")
    assert not (runvm.root.parent / "escape").exists()
    assert not runvm.root.exists() or list(runvm.root.iterdir()) == []


def test_duplicate_id_fails_and_keeps_the_first(runvm: Runvm, make_bundle: BundleFactory) -> None:
    """A second create with a taken id fails, names the id, starts no second VM and leaves the first intact."""
    cid = unique("dup")
    bundle = make_bundle(cid, ["sleep", "1000"])
    rc, _, _ = runvm.create(cid, bundle, "--pid-file", str(runvm.workdir / "1.pid"))
    assert rc == 0, runvm.errors()
    first = runvm.state(cid)
    rc2, _, _ = runvm.create(cid, bundle, "--pid-file", str(runvm.workdir / "2.pid"))
    assert rc2 != 0
    assert_error_logged(runvm, cid, "exists")
    assert not (runvm.workdir / "2.pid").exists()
    again = runvm.state(cid)
    assert (again["status"], again["pid"], again["created"]) == ("created", first["pid"], first["created"])
    vms = [p for p, argv in cmdlines().items() if argv.startswith("qemu") and str(runvm.root / cid) in argv]
    assert vms == [qemu_child(first["pid"])]
    stop_and_delete(runvm, cid)


def test_invalid_signal_is_an_error_and_harmless(runvm: Runvm, make_bundle: BundleFactory) -> None:
    """kill with a bad signal: non-zero, `invalid signal` in --log, the container keeps running."""
    sig = "SIGNOPE"
    cid = unique("sig")
    bundle = make_bundle(cid, ["sleep", "1000"])
    rc, _, _ = runvm.create(cid, bundle)
    assert rc == 0, runvm.errors()
    assert runvm("start", cid).returncode == 0
    r = runvm("kill", cid, sig)
    assert r.returncode != 0
    assert_error_logged(runvm, "invalid signal", sig)
    st = runvm.state(cid)
    assert st["status"] == "running" and Path(f"/proc/{st['pid']}").exists()
    stop_and_delete(runvm, cid)


@pytest.mark.parametrize("sig", ["0", "99", "-3", "SIGFOO", ""])
def test_invalid_signal_spellings(runvm: Runvm, sig: str) -> None:
    """Signals are checked before the container is looked up: every bad spelling is `invalid signal`."""
    r = runvm("kill", unique("ghost"), sig)
    assert r.returncode != 0
    assert_error_logged(runvm, "invalid signal")


# ---- spec effects ----------------------------------------------------------------------------------------

GUEST_SYSCTLS = {"run.vmparity.runvm/guest-kernel-sysctls": "true"}
"""runvm's opt-in for sysctls that are not namespaced: a VM has its own kernel, so they are safe in the guest."""


def _host_sysctls() -> dict[str, str]:
    return {k: Path(f"/proc/sys/{k.replace('.', '/')}").read_text().strip()
            for k in ("vm.swappiness", "kernel.panic_on_oops")}


def test_sysctl_applies_in_the_guest_not_on_the_host(runvm: Runvm, make_bundle: BundleFactory) -> None:
    """Non-namespaced sysctls (vm.*, kernel.panic_on_oops), opted in, are the guest kernel's: the container
    reads the new values, the host keeps its own."""
    host = _host_sysctls()
    want = {"vm.swappiness": "13" if host["vm.swappiness"] != "13" else "17",
            "kernel.panic_on_oops": "1" if host["kernel.panic_on_oops"] != "1" else "0"}
    cid = unique("sysctl")
    bundle = make_bundle(cid, ["cat", "/proc/sys/vm/swappiness", "/proc/sys/kernel/panic_on_oops"], sysctl=want,
                         annotations=GUEST_SYSCTLS)
    r = runvm("run", "--bundle", str(bundle), cid)
    assert r.returncode == 0, runvm.errors()
    assert r.stdout.split() == [want["vm.swappiness"], want["kernel.panic_on_oops"]]
    assert _host_sysctls() == host


def test_non_namespaced_sysctl_is_refused_like_runc(runvm: Runvm, make_bundle: BundleFactory,
                                                   tmp_path: Path) -> None:
    """Without the opt-in, runc's rule holds: create fails naming the key, the host value is untouched and
    nothing is left behind."""
    host = _host_sysctls()
    bundle = make_bundle("sysctl-refused", ["true"], sysctl={"vm.swappiness": "13"})
    rc = subprocess.run(["runc", "--root", str(tmp_path / "runc-root"), "create", "--bundle", str(bundle),
                         unique("runc")], capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60)
    assert rc.returncode != 0 and "vm.swappiness" in rc.stderr, "baseline: runc accepted the sysctl"
    cid = unique("sysctl")
    created, _, _ = runvm.create(cid, bundle)
    assert created != 0
    assert_error_logged(runvm, "vm.swappiness")
    assert_nothing_left(runvm, cid)
    assert _host_sysctls() == host


# ---- log format -------------------------------------------------------------------------------------------

class _SteppingClock:
    """A clock that advances between reads, across a second boundary: 1000.9999 then 1001.0001."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.reads = iter([1000.9999, 1001.0001])

    def _now(self) -> float:
        return next(self.reads, 1001.0001)

    def time(self) -> float:
        return self._now()

    def time_ns(self) -> int:
        return round(self._now() * 1e9)

    def gmtime(self, t: float | None = None) -> Any:
        return self.real.gmtime(self._now() if t is None else t)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


def test_log_timestamp_is_one_reading_of_the_clock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--log time stamps must be a real instant: seconds and fraction from the same clock reading."""
    from runtime.runvm import log

    monkeypatch.setattr(log, "time", _SteppingClock(time))
    log.configure(str(tmp_path / "log.json"), "json")
    try:
        log.error("boom")
    finally:
        log.configure(None, "text")
    stamp = json.loads((tmp_path / "log.json").read_text())["time"]
    whole, frac = stamp.rstrip("Z").split(".")
    value = calendar.timegm(time.strptime(whole, "%Y-%m-%dT%H:%M:%S")) + float("0." + frac)
    if abs(value - time.time()) < 30:
        return  # the clock is read some other way (datetime): nothing to check here
    assert min(abs(value - t) for t in (1000.9999, 1001.0001)) < 1e-4, f"{stamp} is neither 1000.9999 nor 1001.0001"
