"""What runvm containers leave on the host: after `docker run --rm` cycles, concurrent containers, and
crashes of the container's QEMU or vm-shim, nothing of them may remain (QEMU, shims, state and socket dirs,
mounts, netns, taps, cgroups)."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import docker
import pytest

from tests.runvm.conftest import IMAGE, LABEL, comm, docker_cli, docker_leftovers, orphan_netns, qemu_child, wait_clean

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def run_rm(tmp: Path, tag: str, *cmd: str) -> tuple[str, bytes]:
    """`docker run --rm` with a cidfile: (container id, stdout)."""
    cidfile = tmp / f"{tag}.cid"
    r = docker_cli("run", "--rm", "--cidfile", str(cidfile), "--runtime", "runvm", "--label", "vmparity.test=runvm",
                   IMAGE, *cmd, timeout=180)
    assert r.returncode == 0, r.stderr
    return cidfile.read_text().strip(), r.stdout


def assert_gone(dk: Any, cids: list[str], netns_before: set[str]) -> None:
    for cid in cids:
        left = wait_clean(lambda cid=cid: docker_leftovers(cid))
        assert not left, f"container {cid[:12]} left: {left}"
    assert not {c.id for c in dk.containers.list(all=True, ignore_removed=True)} & set(cids)
    new_netns = wait_clean(lambda: sorted(orphan_netns(dk) - netns_before))
    assert not new_netns, f"netns mounts nobody owns: {new_netns}"


def test_sequential_run_rm_cycles_leave_nothing(dk: Any, tmp_path: Path) -> None:
    """20 `docker run --rm` in a row: each prints its line, and no trace of any of them remains."""
    netns_before = orphan_netns(dk)
    cids = []
    for i in range(20):
        cid, out = run_rm(tmp_path, f"seq{i}", "echo", f"cycle-{i}")
        assert out == f"cycle-{i}\n".encode()
        cids.append(cid)
    assert len(set(cids)) == 20
    assert_gone(dk, cids, netns_before)


def test_concurrent_containers_leave_nothing(dk: Any, tmp_path: Path) -> None:
    """4 containers at once (4 VMs on 2 cores): all run to completion with their own output, nothing remains."""
    netns_before = orphan_netns(dk)
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda i: run_rm(tmp_path, f"par{i}", "sh", "-c", f"sleep 2; echo par-{i}"),
                                range(4)))
    assert [out for _cid, out in results] == [f"par-{i}\n".encode() for i in range(4)]
    assert_gone(dk, [cid for cid, _ in results], netns_before)


def _wait_not_running(c: Any, timeout: float) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        c.reload()
        if not c.attrs["State"]["Running"]:
            break
        time.sleep(0.05)
    return time.monotonic() - t0


@pytest.fixture(scope="module")
def qemu_killed(dk: Any) -> dict[str, Any]:
    """kill -9 of a running container's QEMU (the vm-shim's child), then `docker rm`: what was observed."""
    netns_before = orphan_netns(dk)
    c = dk.containers.run(IMAGE, ["sleep", "1000"], runtime="runvm", detach=True, labels=LABEL)
    try:
        c.reload()
        os.kill(qemu_child(c.attrs["State"]["Pid"]), signal.SIGKILL)
        elapsed = _wait_not_running(c, 30)
        c.reload()
        state = dict(c.attrs["State"])
        c.remove()
    finally:
        with contextlib.suppress(docker.errors.NotFound):
            c.remove(force=True)
    left = [f"{c.id[:12]}: {x}" for x in wait_clean(lambda: docker_leftovers(c.id))]
    left += [f"netns {n}" for n in wait_clean(lambda: sorted(orphan_netns(dk) - netns_before))]
    return {"elapsed": elapsed, "state": state, "left": left}


def test_qemu_killed_container_exits_nonzero_and_rm_leaves_nothing(qemu_killed: dict[str, Any]) -> None:
    """The VM dying under the container is the container dying: non-zero exit, then nothing left after rm."""
    state = qemu_killed["state"]
    assert not state["Running"], "still running 30 s after its VM died"
    assert state["ExitCode"] != 0
    assert qemu_killed["left"] == []


def test_qemu_killed_container_exits_within_5s(qemu_killed: dict[str, Any]) -> None:
    """containerd learns of the death within 5 s of the kill."""
    assert qemu_killed["elapsed"] < 5, f"{qemu_killed['elapsed']:.1f}s"


def test_vm_shim_killed_leaves_nothing_after_rm(dk: Any) -> None:
    """kill -9 of the vm-shim (State.Pid): the container stops, QEMU dies with it, `docker rm -f` cleans all."""
    netns_before = orphan_netns(dk)
    c = dk.containers.run(IMAGE, ["sleep", "1000"], runtime="runvm", detach=True, labels=LABEL)
    try:
        c.reload()
        shim = c.attrs["State"]["Pid"]
        qemu = qemu_child(shim)
        os.kill(shim, signal.SIGKILL)
        _wait_not_running(c, 30)
        c.reload()
        assert not c.attrs["State"]["Running"]
        assert c.attrs["State"]["ExitCode"] == 137
        assert not comm(qemu).startswith("qemu") or wait_clean(
            lambda: [str(qemu)] if comm(qemu).startswith("qemu") else [], 5) == []
    finally:
        c.remove(force=True)
    assert_gone(dk, [c.id], netns_before)
