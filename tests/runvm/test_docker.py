"""runvm driven by Docker 20.10 (`--runtime runvm`): the effects a user sees (output, exit codes, signals, stdio,
tty, exec, bind mounts, isolation), compared with runc where the expected value is runc's behaviour."""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import secrets
import select
import struct
import subprocess
import termios
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.runvm.conftest import IMAGE, LABEL, docker_cli, wait_log

pytestmark = pytest.mark.docker
LOOP = "while :; do sleep 0.1; done"
TEN_MIB = 10 * 1024 * 1024
DEFAULT_DEVICES = ["full", "null", "random", "tty", "urandom", "zero"]


def start(dk: Any, runtime: str, cmd: list[str] | str, **kw: Any) -> Any:
    return dk.containers.run(IMAGE, cmd, runtime=runtime, detach=True, labels=LABEL, **kw)


def run_to_end(dk: Any, runtime: str, cmd: list[str] | str, **kw: Any) -> tuple[int, bytes, bytes]:
    """(exit code, stdout, stderr) of a container run to completion, then removed."""
    c = start(dk, runtime, cmd, **kw)
    try:
        code = c.wait(timeout=180)["StatusCode"]
        return code, c.logs(stdout=True, stderr=False), c.logs(stdout=False, stderr=True)
    finally:
        c.remove(force=True)


def status(c: Any) -> str:
    c.reload()
    return str(c.status)


@pytest.fixture(scope="module")
def box(dk: Any) -> Iterator[Any]:
    """One long-running runvm container for the exec and isolation checks (one VM instead of ten)."""
    c = start(dk, "runvm", ["sleep", "100000"])
    yield c
    c.remove(force=True)


def test_echo_hi(dk: Any) -> None:
    """The smallest round trip: output arrives and the container exits 0 and is removed."""
    assert dk.containers.run(IMAGE, ["echo", "hi"], runtime="runvm", remove=True, labels=LABEL) == b"hi\n"


def test_guest_kernel_is_not_the_host_kernel(box: Any) -> None:
    """The container runs on the VM's own kernel (Debian's 6.1), not the host's."""
    r = box.exec_run(["uname", "-r"])
    release = r.output.decode().strip()
    assert r.exit_code == 0
    assert release != os.uname().release
    assert re.fullmatch(r"6\.1\.0-\d+-amd64", release), release


def test_no_host_process_is_visible(box: Any) -> None:
    """Inside, ps lists the container's processes only: its PID 1 (sleep) and ps itself."""
    r = box.exec_run(["ps", "-o", "pid,comm"])
    rows = [line.split() for line in r.output.decode().splitlines()[1:]]
    assert r.exit_code == 0
    assert sorted(comm for _pid, comm in rows) == ["ps", "sleep"], rows
    assert ["1", "sleep"] in rows
    assert sum(1 for e in os.scandir("/proc") if e.name.isdigit()) > 20  # the host has plenty


def test_host_files_outside_the_rootfs_are_not_visible(box: Any, tmp_path: Path) -> None:
    """Nothing of the host's filesystem beyond the rootfs and Docker's own bind mounts: not even /tmp."""
    marker = Path("/tmp") / f"vmparity-marker-{secrets.token_hex(4)}"
    marker.write_text("host only\n")
    try:
        probes = [str(marker), "/work", "/etc/docker", "/var/lib/docker", "/run/runvm-sock", str(tmp_path)]
        script = "for p in " + " ".join(probes) + '; do test -e "$p" && echo "VISIBLE $p"; done; ls /'
        r = box.exec_run(["sh", "-c", script])
    finally:
        marker.unlink()
    assert r.exit_code == 0
    lines = r.output.decode().split()
    assert not [line for line in lines if line.startswith("VISIBLE")], lines
    assert sorted(lines) == ["bin", "data", "dev", "etc", "home", "proc", "root", "run", "sbin", "sys", "tmp",
                             "usr", "var"]


def test_default_devices_exist_like_under_runc(dk: Any, box: Any) -> None:
    """OCI's default devices are character devices in every container (runc creates them without a spec entry)."""
    script = "for d in " + " ".join(DEFAULT_DEVICES) + '; do test -c "/dev/$d" && echo "$d"; done'
    code, out, _ = run_to_end(dk, "runc", ["sh", "-c", script])
    assert (code, out.decode().split()) == (0, DEFAULT_DEVICES)
    r = box.exec_run(["sh", "-c", script])
    assert r.output.decode().split() == DEFAULT_DEVICES


@pytest.mark.parametrize("exe", [
    "nosuchcmd",
    "/nonexistent",
])
def test_missing_executable_fails_create_like_runc(exe: str) -> None:
    """A command that is not there: `docker run` fails with an OCI create error naming it (exit 127), as
    under runc, instead of a container that starts and exits without a word."""
    results = {}
    for rt in ("runc", "runvm"):
        r = docker_cli("run", "--rm", "--runtime", rt, "--label", "vmparity.test=runvm", IMAGE, exe, timeout=120)
        results[rt] = (r.returncode, b"OCI runtime create failed" in r.stderr and exe.encode() in r.stderr)
    assert results["runc"] == (127, True), "baseline"
    assert results["runvm"] == results["runc"], results


def test_bind_mount_both_ways(dk: Any, tmp_path: Path) -> None:
    """-v: a host file is read inside, including one written after start; a file written inside is on the host."""
    share = tmp_path / "share"
    share.mkdir()
    (share / "from-host").write_text("written before start\n")
    script = ("cat /m/from-host; i=0; while [ ! -e /m/late ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done; "
              "cat /m/late; echo written-inside > /m/from-guest")
    c = start(dk, "runvm", ["sh", "-c", script], volumes={str(share): {"bind": "/m", "mode": "rw"}})
    try:
        wait_log(c, "written before start")
        (share / "late").write_text("written while running\n")
        assert c.wait(timeout=60)["StatusCode"] == 0
        assert c.logs().decode() == "written before start\nwritten while running\n"
    finally:
        c.remove(force=True)
    assert (share / "from-guest").read_text() == "written-inside\n"


# ---- exec ------------------------------------------------------------------------------------------------

def test_exec_env_user_workdir(box: Any) -> None:
    """docker exec -e -u -w: the variable, the uid/gid and the working directory reach the new process."""
    r = box.exec_run(["sh", "-c", 'echo "$FOO"; id -u; id -g; pwd'], environment={"FOO": "bar baz"},
                     user="1000:1000", workdir="/home/tester")
    assert (r.exit_code, r.output.decode()) == (0, "bar baz\n1000\n1000\n/home/tester\n")
    named = box.exec_run(["id", "-un"], user="tester")
    assert named.output.decode() == "tester\n"


def test_exec_exit_code_propagates(box: Any) -> None:
    """The exec'd process's exit status is docker exec's (SDK and CLI)."""
    assert box.exec_run(["sh", "-c", "exit 5"]).exit_code == 5
    assert docker_cli("exec", box.id, "sh", "-c", "exit 42").returncode == 42


def test_exec_stdin_and_eof(box: Any) -> None:
    """docker exec -i: piped stdin arrives intact and its EOF ends cat."""
    data = b"".join(b"line %d\n" % i for i in range(2000))
    r = docker_cli("exec", "-i", box.id, "sh", "-c", "cat; echo eof-seen", input=data, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout == data + b"eof-seen\n"


def test_exec_tty(box: Any) -> None:
    """docker exec -t: the process gets a pty (a /dev/pts name, isatty, CRLF output processing)."""
    r = box.exec_run(["sh", "-c", "tty; test -t 0 && test -t 1 && echo both-tty"], tty=True)
    assert r.exit_code == 0
    assert re.fullmatch(rb"/dev/pts/\d+\r\nboth-tty\r\n", r.output), r.output


# ---- exit codes and signals ----------------------------------------------------------------------------

def test_exit_code_and_logs_keep_streams_apart(dk: Any) -> None:
    """exit 3 is the container's exit code; docker logs keeps stdout and stderr apart."""
    code, out, err = run_to_end(dk, "runvm", ["sh", "-c", "echo to-out; echo to-err >&2; echo to-out-2; exit 3"])
    assert (code, out, err) == (3, b"to-out\nto-out-2\n", b"to-err\n")


def test_docker_kill_gives_137(dk: Any) -> None:
    """docker kill (SIGKILL) of a running container: exit code 128+9."""
    c = start(dk, "runvm", ["sleep", "1000"])
    try:
        assert status(c) == "running"
        c.kill()
        assert c.wait(timeout=30)["StatusCode"] == 137
    finally:
        c.remove(force=True)


def test_sigterm_to_a_non_init_process_gives_143_like_runc(dk: Any) -> None:
    """With --init, docker-init forwards SIGTERM to sleep, which dies of it: 143 under runc and runvm alike.
    The signal is sent once sleep runs (docker-init has its handlers by then; see test_cli for the race)."""
    ctrs = {rt: start(dk, rt, ["sleep", "1000"], init=True) for rt in ("runc", "runvm")}
    try:
        for c in ctrs.values():
            deadline = time.monotonic() + 30
            while b"sleep 1000" not in c.exec_run(["ps", "-o", "args"]).output and time.monotonic() < deadline:
                time.sleep(0.1)
            c.kill(signal="SIGTERM")
        codes = {rt: c.wait(timeout=30)["StatusCode"] for rt, c in ctrs.items()}
    finally:
        for c in ctrs.values():
            c.remove(force=True)
    assert codes == {"runc": 143, "runvm": 143}


def test_pid1_without_handler_ignores_sigterm_like_runc(dk: Any) -> None:
    """`sh -c 'sleep 1000 & wait'` as PID 1 has no TERM handler: the kernel drops SIGTERM for init, so the
    container keeps running and only SIGKILL ends it (137). runvm must do what runc does."""
    cmd = ["sh", "-c", "sleep 1000 & wait"]
    ctrs = {rt: start(dk, rt, cmd) for rt in ("runc", "runvm")}
    seen: dict[str, list[Any]] = {rt: [] for rt in ctrs}
    try:
        time.sleep(1)
        for rt, c in ctrs.items():
            seen[rt].append(status(c))
            if seen[rt][-1] == "running":
                c.kill(signal="SIGTERM")
        time.sleep(2)
        for rt, c in ctrs.items():
            seen[rt].append(status(c))
            if seen[rt][-1] == "running":
                c.kill()
            seen[rt].append(c.wait(timeout=30)["StatusCode"])
    finally:
        for c in ctrs.values():
            c.remove(force=True)
    assert seen["runc"] == ["running", "running", 137], seen
    assert seen["runvm"] == seen["runc"], seen


def test_docker_stop_delivers_sigterm_to_a_trap(dk: Any) -> None:
    """docker stop: the TERM trap runs (its output is logged, its exit code is the container's), well before
    the 10 s timeout."""
    c = start(dk, "runvm", ["sh", "-c", f"trap 'echo got-TERM; exit 7' TERM; echo ready; {LOOP}"])
    try:
        assert "ready" in wait_log(c, "ready")
        t0 = time.monotonic()
        c.stop(timeout=10)
        elapsed = time.monotonic() - t0
        assert c.wait(timeout=30)["StatusCode"] == 7
        assert c.logs() == b"ready\ngot-TERM\n"
        assert elapsed < 5, f"stop took {elapsed:.1f}s"
    finally:
        c.remove(force=True)


def test_docker_stop_kills_after_the_timeout(dk: Any) -> None:
    """docker stop -t 2 on a process ignoring TERM: SIGKILL after ~2 s, exit code 137."""
    c = start(dk, "runvm", ["sh", "-c", f"trap '' TERM; echo ready; {LOOP}"])
    try:
        assert "ready" in wait_log(c, "ready")
        t0 = time.monotonic()
        c.stop(timeout=2)
        elapsed = time.monotonic() - t0
        assert c.wait(timeout=30)["StatusCode"] == 137
        assert 1.9 <= elapsed < 6, f"stop -t 2 took {elapsed:.1f}s"
    finally:
        c.remove(force=True)


# ---- stdio -----------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_ten_mib_of_output_is_byte_exact_like_runc() -> None:
    """10 MiB through the attach stream: same bytes (sha256) as runc, and as the generator's."""
    expected = hashlib.sha256((b"abcdefgh\n" * (TEN_MIB // 9 + 1))[:TEN_MIB]).hexdigest()
    digests = {}
    for rt in ("runc", "runvm"):
        r = docker_cli("run", "--rm", "--runtime", rt, "--label", "vmparity.test=runvm", IMAGE,
                       "sh", "-c", f"yes abcdefgh | head -c {TEN_MIB}", timeout=180)
        assert r.returncode == 0, r.stderr
        digests[rt] = (len(r.stdout), hashlib.sha256(r.stdout).hexdigest())
    assert digests["runc"] == (TEN_MIB, expected)
    assert digests["runvm"] == digests["runc"]


def test_piped_stdin_arrives_and_eof_ends_cat() -> None:
    """docker run -i: binary stdin arrives byte-exact and its EOF reaches the guest (cat ends, sh goes on)."""
    data = bytes(range(256)) * 1024
    r = docker_cli("run", "-i", "--rm", "--runtime", "runvm", "--label", "vmparity.test=runvm", IMAGE,
                   "sh", "-c", "cat; echo eof-seen", input=data, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout == data + b"eof-seen\n"


class Pty:
    """The docker CLI on a pty we hold the master of, as a terminal user would run it."""

    def __init__(self, argv: list[str], rows: int, cols: int) -> None:
        self.master, slave = os.openpty()
        self.resize(rows, cols)

        def ctty() -> None:
            os.setsid()
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        self.proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, preexec_fn=ctty, close_fds=True)
        os.close(slave)
        self.buf = b""

    def resize(self, rows: int, cols: int) -> None:
        """The kernel sends SIGWINCH to the docker CLI, which asks the daemon to resize the container's tty."""
        fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def send(self, data: bytes) -> None:
        os.write(self.master, data)

    def expect(self, pattern: bytes, timeout: float = 30) -> re.Match[bytes] | None:
        deadline = time.monotonic() + timeout
        while True:
            m = re.search(pattern, self.buf)
            if m:
                self.buf = self.buf[m.end():]
                return m
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            ready, _, _ = select.select([self.master], [], [], min(left, 0.5))
            if ready:
                try:
                    chunk = os.read(self.master, 65536)
                except OSError:
                    chunk = b""
                if not chunk:
                    return re.search(pattern, self.buf)
                self.buf += chunk

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        os.close(self.master)


def test_run_it_gives_a_tty_that_follows_resizes() -> None:
    """docker run -it: a working interactive shell whose tty has the terminal's size, before and after a resize."""
    term = Pty(["docker", "run", "-it", "--rm", "--runtime", "runvm", "--label", "vmparity.test=runvm", IMAGE, "sh"],
               rows=31, cols=101)
    try:
        assert term.expect(rb"# "), term.buf
        term.send(b"stty size; tty\n")
        m = term.expect(rb"(\d+) (\d+)\r\n(/dev/pts/\d+)\r\n")
        assert m and m.group(1, 2) == (b"31", b"101"), term.buf
        term.resize(47, 133)
        got: tuple[bytes, ...] | None = None
        for _ in range(20):  # the resize travels CLI -> daemon -> containerd -> runvm -> guest asynchronously
            term.send(b"stty size\n")
            m = term.expect(rb"(\d+) (\d+)\r\n", timeout=10)
            got = m.group(1, 2) if m else None
            if got == (b"47", b"133"):
                break
            time.sleep(0.2)
        assert got == (b"47", b"133"), term.buf
        term.send(b"exit 0\n")
        assert term.proc.wait(timeout=60) == 0
    finally:
        term.close()
