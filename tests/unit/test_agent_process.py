"""Starting processes, the parts that run on the host: the executable lookup and its Docker-like errors, the
helper's reports over a SOCK_SEQPACKET pair (pid, ready, a pty master, errors), the start handshake, and an exec
into a container that is gone."""

from __future__ import annotations

import os
import resource
import socket
import threading
from pathlib import Path

import pytest

from runtime.agent import process
from runtime.agent.cgroups import Cgroup
from runtime.agent.process import ProcessError, Stdio


def test_lookup_searches_the_path_and_fails_as_docker_says(tmp_path: Path) -> None:
    tool = tmp_path / "bin" / "tool"
    tool.parent.mkdir()
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o755)
    (tmp_path / "bin" / "plain").write_text("not executable")
    env = [f"PATH=/nonexistent:{tool.parent}"]
    assert process._lookup("tool", env) == str(tool)
    assert process._lookup(str(tool), []) == str(tool)
    assert process._lookup("./relative", []) == "./relative"  # resolved in the process's cwd, at exec
    with pytest.raises(ProcessError, match='exec: "nope": executable file not found in \\$PATH'):
        process._lookup("nope", env)
    with pytest.raises(ProcessError, match="no such file or directory"):
        process._lookup("/no/such/file", env)
    with pytest.raises(ProcessError, match="permission denied"):
        process._lookup(str(tmp_path / "bin" / "plain"), env)
    with pytest.raises(ProcessError, match="permission denied"):
        process._lookup(str(tmp_path / "bin"), env)


def test_pipes_hand_the_child_its_ends() -> None:
    stdio = Stdio.pipes()
    assert not stdio.tty and len(stdio.child_fds) == 3
    in_r, out_w, _err_w = stdio.child_fds
    assert stdio.stdin is not None and stdio.stdout is not None
    os.write(stdio.stdin, b"in")
    assert os.read(in_r, 2) == b"in"
    os.write(out_w, b"out")
    assert os.read(stdio.stdout, 3) == b"out"
    stdio.close_child_ends()
    assert stdio.child_fds == []
    for fd in (stdio.stdin, stdio.stdout, stdio.stderr):
        assert fd is not None
        os.close(fd)


def _pair() -> tuple[socket.socket, socket.socket]:
    return socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)


def test_the_helper_s_reports_until_ready_with_a_pty_master() -> None:
    agent, child = _pair()
    r, w = os.pipe()
    process._send(child, "pid 123")
    process._send(child, "pty", [r])
    process._send(child, "ready")
    spawned = process._collect(agent, True, "ready")
    assert spawned.pid == 123 and spawned.pty_master is not None
    os.write(w, b"via the passed fd")
    assert os.read(spawned.pty_master, 100) == b"via the passed fd"
    for fd in (r, w, spawned.pty_master):
        os.close(fd)
    agent.close()
    child.close()


def test_an_exec_is_running_when_its_socket_closes_after_the_pid() -> None:
    agent, child = _pair()
    process._send(child, "pid 9")
    child.close()  # close-on-exec: the process exec'd
    assert process._collect(agent, False, "exec").pid == 9
    agent.close()


@pytest.mark.parametrize(("reports", "error"), [
    (["pid 5", "error exec: \"x\": permission denied"], 'exec: "x": permission denied'),
    ([], "the process failed to start (its helper exited without a report)"),
])
def test_a_failed_start_says_why(reports: list[str], error: str) -> None:
    agent, child = _pair()
    for text in reports:
        process._send(child, text)
    child.close()
    with pytest.raises(ProcessError, match=error.replace("(", r"\(").replace(")", r"\)")):
        process._collect(agent, False, "ready")
    agent.close()


def test_release_waits_for_the_exec_or_reports_its_failure() -> None:
    agent, child = _pair()

    def exec_on_start() -> None:
        assert child.recv(16) == b"start"
        child.close()  # close-on-exec: the exec happened

    waiter = threading.Thread(target=exec_on_start)
    waiter.start()
    process.release(process.Spawned(1, agent))
    waiter.join()
    agent, child = _pair()
    child.close()
    with pytest.raises(ProcessError, match="did not start"):
        process.release(process.Spawned(1, agent))  # gone before the start
    agent, child = _pair()
    child.send(b"error exec: bad format")  # queued before "start": the process's answer
    with pytest.raises(ProcessError, match="exec: bad format"):
        process.release(process.Spawned(1, agent))
    child.close()


def test_exec_into_a_gone_container_fails_before_forking() -> None:
    with pytest.raises(ProcessError, match=r"container is not running \(init 4194999"):
        process.start_exec(4194999, {"args": ["sh"]}, Stdio(False), Cgroup([], "/c"))


def test_child_failures_reach_the_agent_as_error_reports() -> None:
    agent, child = _pair()
    pid = os.fork()
    if pid == 0:
        agent.close()

        def work() -> None:
            raise ProcessError("chdir to cwd ('/nope') set in config.json failed: No such file or directory")

        process._child_main(work, child)
    child.close()
    assert agent.recv(256) == b"error chdir to cwd ('/nope') set in config.json failed: No such file or directory"
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 127
    agent.close()


def test_rlimit_names_are_the_resource_module_s() -> None:
    assert process.RLIMITS["RLIMIT_NOFILE"] == resource.RLIMIT_NOFILE
