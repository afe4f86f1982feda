"""runvm --pool: VMs restored ahead of time. A create takes the spare (its state says so) and the container
behaves like any other, network included; two pooled containers share no random state; and nothing is left when
a pooled container's vm-shim or a keeper is killed with -9, or when the pool is drained."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from runtime.runvm.state import proc_start_time
from runtime.runvm.vm import pool
from tests.runvm.conftest import DOCKER_ROOT, IMAGE, LABEL, RUNVM, docker_leftovers, wait_clean

pytestmark = [pytest.mark.docker, pytest.mark.slow]

RUNTIME = "runvm-pool"  # set-up registers it: runvm --pool


def runvm_pool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([RUNVM, "--pool", "pool", *args], capture_output=True, text=True, timeout=120)


def fill() -> pool.Slot:
    """Until one spare of the default pool key is ready; returns it."""
    r = runvm_pool("fill", "--wait", "90")
    assert r.returncode == 0, r.stderr
    key = json.loads(r.stdout)["key"]
    ready = [s for s in pool.slots(key) if s.info.get("ready") and not s.claimed and s.keeper_alive]
    assert ready, pool.slots(key)
    return ready[0]


def alive(pid: int, start: int | None) -> bool:
    return start is not None and proc_start_time(pid) == start


def slot_leftovers(slot: Path, qemu: int, qemu_start: int | None) -> list[str]:
    left = [f"slot {slot}"] if slot.exists() else []
    return left + ([f"QEMU {qemu}"] if alive(qemu, qemu_start) else [])


@pytest.fixture
def drained() -> Iterator[None]:
    """Every test starts from a known pool, and leaves none behind."""
    runvm_pool("drain")
    yield
    r = runvm_pool("drain")
    assert r.returncode == 0, r.stderr
    assert wait_clean(lambda: [str(s.dir) for s in pool.slots()], 10) == []


def state_of(cid: str) -> dict[str, Any]:
    return json.loads((Path(DOCKER_ROOT) / cid / "state.json").read_text())


@pytest.fixture
def internal_net(dk: Any) -> Iterator[Any]:
    net = dk.networks.create(f"rvt-pool-{secrets.token_hex(3)}", driver="bridge", internal=True, labels=LABEL)
    yield net
    net.remove()


def pinged_from_runc_peer(dk: Any, net: Any, container: Any) -> bytes:
    """What `ping -c 1` from a runc container on the same --internal network prints."""
    container.reload()
    ip = container.attrs["NetworkSettings"]["Networks"][net.name]["IPAddress"]
    return dk.containers.run(IMAGE, ["ping", "-c", "1", "-W", "5", ip], runtime="runc", network=net.name,
                             labels=LABEL, remove=True)


def test_pooled_container_takes_the_spare_and_its_network_works(dk: Any, drained: None, internal_net: Any) -> None:
    """The create claims the ready spare (named in runvm's state), the tap moved into the container's netns
    carries traffic: a runc peer on an --internal network pings it. After rm, slot and VM are gone."""
    spare = fill()
    pooled = dk.containers.run(IMAGE, ["sleep", "300"], runtime=RUNTIME, detach=True, labels=LABEL,
                               network=internal_net.name)
    try:
        st = state_of(pooled.id)
        assert st["extra"]["pool_slot"] == str(spare.dir), st
        assert f"pool spare {spare.dir.name}" in st["boot_reason"]
        assert st["qemu_pid"] == spare.info["qemu"]
        peer = pinged_from_runc_peer(dk, internal_net, pooled)
        assert b"1 packets received" in peer, peer
    finally:
        pooled.remove(force=True)
    assert wait_clean(lambda: docker_leftovers(pooled.id) + slot_leftovers(
        spare.dir, spare.info["qemu"], spare.info["qemu_start"])) == []


def test_a_spare_that_cannot_be_adopted_is_replaced_and_the_network_still_works(dk: Any, drained: None,
                                                                                internal_net: Any) -> None:
    """The claimed spare's guest does not answer (its QEMU is stopped): after the adoption times out, the
    vm-shim restores a VM of its own behind a new tap. Docker's veth was wired to the spare's tap meanwhile; it
    is wired again, so a runc peer on the --internal network still reaches the container."""
    spare = fill()
    qemu_pid, qemu_start = spare.info["qemu"], spare.info["qemu_start"]
    os.kill(qemu_pid, signal.SIGSTOP)  # a process this test's `pool fill` started; the fallback kills it
    c = None
    try:
        c = dk.containers.run(IMAGE, ["sleep", "300"], runtime=RUNTIME, detach=True, labels=LABEL,
                              network=internal_net.name)
        st = state_of(c.id)
        assert st["extra"]["pool_slot"] == str(spare.dir), st
        assert st["boot"] == "templated" and "pool spare" not in st["boot_reason"], st
        assert not alive(qemu_pid, qemu_start)
        peer = pinged_from_runc_peer(dk, internal_net, c)
        assert b"1 packets received" in peer, peer
    finally:
        if alive(qemu_pid, qemu_start):
            os.kill(qemu_pid, signal.SIGKILL)
        if c is not None:
            c.remove(force=True)
    assert wait_clean(lambda: docker_leftovers(c.id) + slot_leftovers(spare.dir, qemu_pid, qemu_start)) == []


def test_two_pooled_containers_share_no_random_state(dk: Any, drained: None) -> None:
    """Both restored from one template before either existed: boot ids and /dev/urandom output still differ."""
    seen = []
    containers = []
    try:
        for _ in range(2):
            spare = fill()
            c = dk.containers.run(IMAGE, ["sleep", "300"], runtime=RUNTIME, detach=True, labels=LABEL)
            containers.append(c)
            assert state_of(c.id)["extra"]["pool_slot"] == str(spare.dir)
            out = c.exec_run(["sh", "-c", "cat /proc/sys/kernel/random/boot_id; head -c 32 /dev/urandom | od -x"])
            assert out.exit_code == 0, out.output
            seen.append(out.output)
        boot_ids = [o.split(b"\n", 1)[0] for o in seen]
        randoms = [o.split(b"\n", 1)[1] for o in seen]
        assert boot_ids[0] != boot_ids[1]
        assert randoms[0] != randoms[1]
    finally:
        for c in containers:
            c.remove(force=True)


def test_pooled_vm_ends_with_its_killed_vm_shim(dk: Any, drained: None) -> None:
    """A pooled QEMU is nobody's child (no PDEATHSIG): the agent's hold powers the guest off when the vm-shim
    holding its channel is killed with -9. Within 5 s, and rm leaves nothing."""
    spare = fill()
    c = dk.containers.run(IMAGE, ["sleep", "300"], runtime=RUNTIME, detach=True, labels=LABEL)
    try:
        c.reload()
        shim = c.attrs["State"]["Pid"]
        qemu, qstart = spare.info["qemu"], spare.info["qemu_start"]
        assert state_of(c.id)["qemu_pid"] == qemu
        os.kill(shim, signal.SIGKILL)
        t0 = time.monotonic()
        assert wait_clean(lambda: [str(qemu)] if alive(qemu, qstart) else [], 5) == []
        assert time.monotonic() - t0 < 5
    finally:
        c.remove(force=True)
    assert wait_clean(lambda: docker_leftovers(c.id) + slot_leftovers(spare.dir, qemu, qstart)) == []


def test_two_creates_racing_for_one_spare_both_start(dk: Any, drained: None) -> None:
    """One spare, two pooled creates at once: one takes it, the other restores as usual; both run."""
    spare = fill()
    with ThreadPoolExecutor(2) as ex:
        started = list(ex.map(lambda _i: dk.containers.run(IMAGE, ["sleep", "300"], runtime=RUNTIME, detach=True,
                                                           labels=LABEL), range(2)))
    try:
        slots = [state_of(c.id)["extra"].get("pool_slot") for c in started]
        assert slots.count(str(spare.dir)) == 1, slots
        for c in started:
            c.reload()
            assert c.attrs["State"]["Running"]
            assert c.exec_run(["true"]).exit_code == 0
    finally:
        for c in started:
            c.remove(force=True)
    assert wait_clean(lambda: slot_leftovers(spare.dir, spare.info["qemu"], spare.info["qemu_start"])) == []


def test_killed_keeper_takes_its_spare_with_it(drained: None) -> None:
    """kill -9 of a keeper: the spare's guest loses its channel and powers off; prune then removes the slot."""
    spare = fill()
    os.kill(spare.info["keeper"], signal.SIGKILL)
    qemu, qstart = spare.info["qemu"], spare.info["qemu_start"]
    assert wait_clean(lambda: [str(qemu)] if alive(qemu, qstart) else [], 5) == []
    r = runvm_pool("prune")
    assert r.returncode == 0, r.stderr
    assert str(spare.dir) in json.loads(r.stdout)["removed"]
    assert not spare.dir.exists()


def test_drain_ends_keepers_and_spares(drained: None) -> None:
    spare = fill()
    r = runvm_pool("drain")
    assert r.returncode == 0, r.stderr
    for who in ("keeper", "qemu"):
        assert not alive(spare.info[who], spare.info[f"{who}_start"]), who
    assert not spare.dir.exists()
    left = {str(d): (d / "cgroup.procs").read_text().split()
            for d in Path("/sys/fs/cgroup").glob(f"*/{pool.POOL_CGROUP.strip('/')}")}
    assert not left, f"pool cgroup left: {left}; slots: {[(str(s.dir), s.info) for s in pool.slots()]}"


def test_fill_without_a_template_fails_naming_it(tmp_path: Path) -> None:
    r = subprocess.run([RUNVM, "pool", "fill"], capture_output=True, text=True, timeout=60,
                       env={**os.environ, "RUNVM_TEMPLATES": str(tmp_path / "none"),
                            "RUNVM_POOL_DIR": str(tmp_path / "pool")})
    assert r.returncode != 0
    assert "template" in r.stderr and "runvm template build" in r.stderr, r.stderr


def test_remove_slot_never_enters_a_mount(tmp_path: Path) -> None:
    """A slot whose share holds a bind mount (as it does in the VM's mount namespace): removal leaves the
    mounted files alone."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_text("x")
    slot = tmp_path / "slot"
    (slot / "share" / "rootfs").mkdir(parents=True)
    (slot / "spare.json").write_text("{}")
    subprocess.run(["mount", "--bind", str(outside), str(slot / "share" / "rootfs")], check=True)
    try:
        pool.remove_slot(slot)
        assert (outside / "keep").read_text() == "x"
        assert not (slot / "spare.json").exists()
    finally:
        subprocess.run(["umount", str(slot / "share" / "rootfs")], check=True)
    pool.remove_slot(slot)
    assert not slot.exists()
