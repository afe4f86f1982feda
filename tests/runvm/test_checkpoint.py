"""`docker checkpoint create` / `docker start --checkpoint` under runvm: CRIU runs inside the container's VM and the
restore happens in a new VM, so the evidence is the counter's output in `docker logs`: after a restore it goes on
from the checkpoint's value instead of starting again at 1, and nothing of the old or new VM is left behind."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest

from harness.checkpoint_upload import start_from_checkpoint
from tests.runvm.conftest import IMAGE, LABEL, docker_cli, docker_leftovers, wait_clean

pytestmark = [pytest.mark.docker, pytest.mark.slow]
COUNTER = "i=0; while :; do i=$((i+1)); echo $i; sleep 0.2; done"
T = TypeVar("T")


def poll(probe: Callable[[], T], until: Callable[[T], bool], timeout: float) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if until(value) or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


def printed(c: Any) -> list[int]:
    return [int(x) for x in c.logs(stdout=True, stderr=False).decode().split() if x.isdigit()]


def status(c: Any) -> str:
    c.reload()
    return str(c.status)


def docker_ok(*args: str) -> str:
    r = docker_cli(*args, timeout=300)
    assert r.returncode == 0, f"docker {' '.join(args)}: exit {r.returncode}: {r.stderr.decode(errors='replace')}"
    return r.stdout.decode(errors="replace")


@pytest.fixture
def counter(dk: Any) -> Iterator[Any]:
    """A runvm container counting on stdout, already past 5; removed afterwards, checked to leave nothing."""
    c = dk.containers.run(IMAGE, ["sh", "-c", COUNTER], runtime="runvm", detach=True, labels=LABEL)
    try:
        assert len(poll(lambda: printed(c), lambda v: len(v) >= 5, timeout=60)) >= 5, c.logs()
        yield c
    finally:
        c.remove(force=True)
    left = wait_clean(lambda: docker_leftovers(c.id), timeout=20)
    assert not left, f"container {c.id[:12]} left: {left}"


def restore_and_read(c: Any, checkpoint: str, before: int) -> list[int]:
    """`docker start --checkpoint`, then the first values the counter printed afterwards (at least 3)."""
    proc, _ = start_from_checkpoint(lambda: docker_cli("start", "--checkpoint", checkpoint, c.id, timeout=300))
    assert proc.returncode == 0, f"docker start --checkpoint: exit {proc.returncode}: {proc.stderr.decode()}"
    return poll(lambda: printed(c)[before:], lambda v: len(v) >= 3, timeout=30)


def checkpoint_and_resume(c: Any, checkpoint: str) -> None:
    """`docker checkpoint create` without --leave-running stops the container (as under runc: "exited", not the
    "paused" Docker holds it in around the checkpoint); the restore goes on from the last value printed before
    it."""
    docker_ok("checkpoint", "create", c.id, checkpoint)
    assert poll(lambda: status(c), lambda s: s != "running", timeout=30) == "exited"
    saved = printed(c)
    after = restore_and_read(c, checkpoint, len(saved))
    assert after[:1] == [saved[-1] + 1], f"saved at {saved[-1]}, printed after the restore: {after}"


def test_checkpoint_stops_and_restore_continues(counter: Any) -> None:
    """Without --leave-running the checkpoint ends the container; the restore goes on from the saved value and
    the whole log reads 1, 2, 3 ... with nothing lost or repeated across the two VMs. A process started with
    `docker exec` does not block the checkpoint; as with runc, it is not part of the checkpoint (it is not a
    descendant of the container's init)."""
    docker_ok("exec", "-d", counter.id, "sleep", "1000")
    checkpoint_and_resume(counter, "cp1")
    assert status(counter) == "running"
    values = printed(counter)
    assert values == list(range(1, len(values) + 1)), f"not one unbroken count: {values}"
    ps = docker_ok("exec", counter.id, "ps", "-o", "args")
    assert "sleep 1000" not in ps and "while :" in ps, ps


def test_checkpoint_leave_running_then_restore(counter: Any) -> None:
    """With --leave-running the counter keeps going; after a kill, the restore goes back to the checkpoint."""
    low = printed(counter)[-1]
    docker_ok("checkpoint", "create", "--leave-running", counter.id, "cp2")
    high = printed(counter)[-1]
    assert status(counter) == "running"
    assert poll(lambda: printed(counter)[-1], lambda v: v > high + 3, timeout=15) > high + 3, "it stopped counting"
    counter.kill()
    assert poll(lambda: status(counter), lambda s: s == "exited", timeout=30) == "exited"
    values = printed(counter)
    after = restore_and_read(counter, "cp2", len(values))
    assert after and low < after[0] <= high + 1 < values[-1], (
        f"checkpoint taken between {low} and {high}; killed at {values[-1]}; after the restore: {after}")
    assert after == list(range(after[0], after[0] + len(after))), after
    assert status(counter) == "running"

    # a restored container checkpoints and restores again (its stdio pipes are the second VM's)
    checkpoint_and_resume(counter, "cp3")


def test_checkpoint_of_tty_container(dk: Any) -> None:
    """-t: CRIU recreates the container's pty (same /dev/pts index, still the init's controlling terminal) and the
    agent gets its master, so output keeps flowing through Docker's console after the restore."""
    c = dk.containers.run(IMAGE, ["sh", "-c", COUNTER], runtime="runvm", detach=True, tty=True, labels=LABEL)
    try:
        assert len(poll(lambda: printed(c), lambda v: len(v) >= 5, timeout=60)) >= 5, c.logs()
        tty_before = docker_ok("exec", c.id, "sh", "-c", "readlink /proc/1/fd/1; cut -d' ' -f7 /proc/1/stat")
        checkpoint_and_resume(c, "cpt")
        assert status(c) == "running"
        tty_after = docker_ok("exec", c.id, "sh", "-c", "readlink /proc/1/fd/1; cut -d' ' -f7 /proc/1/stat")
        assert tty_after == tty_before and tty_after.split()[1] != "0", (tty_before, tty_after)
    finally:
        c.remove(force=True)
    left = wait_clean(lambda: docker_leftovers(c.id), timeout=20)
    assert not left, f"container {c.id[:12]} left: {left}"


def test_checkpoint_of_listening_server(dk: Any) -> None:
    """A container with sockets (a listening HTTP server, the guest's sock_diag modules let CRIU dump them):
    after the restore in a new VM the same server process answers again."""
    server = "mkdir -p /tmp/www && echo hello > /tmp/www/index.html && httpd -p 8080 -h /tmp/www && " + COUNTER
    c = dk.containers.run(IMAGE, ["sh", "-c", server], runtime="runvm", detach=True, labels=LABEL)
    try:
        assert len(poll(lambda: printed(c), lambda v: len(v) >= 3, timeout=60)) >= 3, c.logs()
        fetch = ["exec", c.id, "wget", "-q", "-O-", "http://127.0.0.1:8080/"]
        assert docker_ok(*fetch) == "hello\n"
        httpd = docker_ok("exec", c.id, "pidof", "httpd")
        checkpoint_and_resume(c, "cps")
        assert docker_ok("exec", c.id, "pidof", "httpd") == httpd
        assert docker_ok(*fetch) == "hello\n"
    finally:
        c.remove(force=True)
    left = wait_clean(lambda: docker_leftovers(c.id), timeout=20)
    assert not left, f"container {c.id[:12]} left: {left}"
