"""stop(): the one way a VM ends (QMP quit, SIGTERM, SIGKILL, bounded, reaped), against real child processes
and a fake QMP monitor: a quit honoured, a quit ignored, a SIGTERM ignored, a process already gone."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from runtime.runvm.vm import qemu, stop

FAKE_QMP = textwrap.dedent('''
    import os, signal, socket, sys, time
    path, honour_quit, ignore_term = sys.argv[1], sys.argv[2] == "1", sys.argv[3] == "1"
    if ignore_term:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    srv = socket.socket(socket.AF_UNIX)
    srv.bind(path)
    srv.listen(1)
    print("ready", flush=True)
    while True:
        c, _ = srv.accept()
        c.sendall(b'{"QMP": {"version": {}, "capabilities": []}}\\r\\n')
        f = c.makefile("rb")
        for line in f:
            if b"qmp_capabilities" in line:
                c.sendall(b'{"return": {}}\\r\\n')
            elif b"quit" in line:
                c.sendall(b'{"return": {}}\\r\\n')
                if honour_quit:
                    os._exit(7)
        c.close()
''')


def fake_vm(tmp: Path, honour_quit: bool, ignore_term: bool) -> tuple[subprocess.Popen[bytes], Path]:
    sock = tmp / "qmp.sock"
    proc = subprocess.Popen([sys.executable, "-c", FAKE_QMP, str(sock), str(int(honour_quit)), str(int(ignore_term))],
                            stdout=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
    return proc, sock


def test_quit_honoured_ends_it_without_a_signal(tmp_path: Path) -> None:
    proc, sock = fake_vm(tmp_path, honour_quit=True, ignore_term=False)
    assert qemu.stop(proc, sock) == stop.QUIT
    assert proc.returncode == 7  # its own exit: no signal was needed


def test_quit_ignored_then_sigterm(tmp_path: Path) -> None:
    proc, sock = fake_vm(tmp_path, honour_quit=False, ignore_term=False)
    started = time.monotonic()
    assert qemu.stop(proc, sock) == stop.TERM
    assert proc.returncode == -15
    assert time.monotonic() - started < stop.QUIT_S + stop.TERM_S + 0.5


def test_sigterm_ignored_then_sigkill_within_the_bound(tmp_path: Path) -> None:
    proc, sock = fake_vm(tmp_path, honour_quit=False, ignore_term=True)
    started = time.monotonic()
    how = stop.stop(proc.pid, sock, quit_s=0.3, term_s=0.3, kill_s=2.0)
    elapsed = time.monotonic() - started
    assert how == stop.KILL
    assert elapsed < 0.3 + 0.3 + 2.0
    with pytest.raises(ChildProcessError):  # reaped by stop()
        os.waitpid(proc.pid, os.WNOHANG)


def test_no_qmp_socket_goes_straight_to_sigterm(tmp_path: Path) -> None:
    proc = subprocess.Popen(["sleep", "60"])
    started = time.monotonic()
    assert qemu.stop(proc, tmp_path / "absent.sock") == stop.TERM
    assert proc.returncode == -15
    assert time.monotonic() - started < 1.0  # no QMP wait when nothing listens


def test_already_dead_is_gone_and_reaped() -> None:
    proc = subprocess.Popen(["true"])
    while os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT | os.WNOHANG) is None:
        time.sleep(0.01)  # a zombie now: exited, not reaped
    assert stop.stop(proc.pid, None) == stop.GONE
    with pytest.raises(ChildProcessError):
        os.waitpid(proc.pid, os.WNOHANG)


def test_a_pid_reused_since_is_left_alone() -> None:
    proc = subprocess.Popen(["sleep", "60"])
    try:
        assert stop.stop(proc.pid, None, start=1) == stop.GONE  # not the start time it had: someone else
        assert proc.poll() is None
    finally:
        proc.kill()
        proc.wait()


def test_not_our_child_is_waited_for_through_its_pidfd() -> None:
    """A pooled VM's QEMU is not the caller's child: stop() signals and waits through a pidfd."""
    r, w = os.pipe()
    mid = os.fork()
    if mid == 0:  # an intermediate that starts the process and leaves, so it is nobody's child here
        os.close(r)
        p = subprocess.Popen(["sleep", "60"], start_new_session=True)
        os.write(w, str(p.pid).encode())
        os._exit(0)
    os.close(w)
    pid = int(os.read(r, 32))
    os.close(r)
    os.waitpid(mid, 0)
    fd = os.pidfd_open(pid)
    try:
        assert stop.stop(pid, None, pidfd=fd) == stop.TERM
        assert stop.exited(fd, 0)
    finally:
        os.close(fd)


def test_shim_grace_then_sigkill_without_sigterm() -> None:
    """delete's use: no QMP, no SIGTERM (a shim would forward it), a grace for its own exit, then SIGKILL."""
    proc = subprocess.Popen(["sleep", "60"])
    assert stop.stop(proc.pid, quit_s=0, term_s=0, grace_s=0.1, reap=False) == stop.KILL
    assert proc.wait(1) == -9
