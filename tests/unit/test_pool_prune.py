"""The spare pool's bookkeeping: which slots prune removes (nobody holds them) and which it keeps (a live keeper,
a live owner, a keeper still starting), what refill counts as waiting, and that the pool's own processes are
the only ones pool.pids() names. Real processes stand in for keepers, VMs and owners; nothing is killed that
this test did not start."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from runtime.runvm.state import proc_start_time
from runtime.runvm.vm import pool

KEY = "k" * 20 + "-tb16"


@pytest.fixture
def pool_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(pool, "POOL_DIR", tmp_path)
    monkeypatch.setattr(pool, "POOL_CGROUP", f"/vmparity-unit-test-absent-{os.getpid()}")  # host's untouched
    (tmp_path / KEY).mkdir()
    return tmp_path


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    p = subprocess.Popen(["sleep", "60"])
    yield p
    p.kill()
    p.wait()


def _slot(root: Path, name: str, info: dict[str, object] | None, age_s: float = 0.0) -> Path:
    d = root / KEY / name
    (d / "share").mkdir(parents=True)
    if info is not None:
        (d / "spare.json").write_text(json.dumps(info))
    t = time.time() - age_s
    os.utime(d, (t, t))
    return d


def _dead_pid() -> tuple[int, int]:
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid, 12345


def test_prune_keeps_what_someone_holds_and_removes_the_rest(pool_dir: Path,
                                                              sleeper: subprocess.Popen[bytes]) -> None:
    live = {"pid": sleeper.pid, "start": proc_start_time(sleeper.pid)}
    dead_pid, dead_start = _dead_pid()
    waiting = _slot(pool_dir, "waiting", {"keeper": live["pid"], "keeper_start": live["start"]})
    owned = _slot(pool_dir, "owned", {"qemu": dead_pid, "qemu_start": dead_start, "claimed_by": live["pid"],
                                      "claimed_by_start": live["start"]})
    orphaned = _slot(pool_dir, "orphaned", {"qemu": dead_pid, "qemu_start": dead_start,
                                            "claimed_by": dead_pid, "claimed_by_start": dead_start})
    dead_keeper = _slot(pool_dir, "dead-keeper", {"keeper": dead_pid, "keeper_start": dead_start})
    starting = _slot(pool_dir, "starting", None, age_s=1)
    stuck = _slot(pool_dir, "stuck", None, age_s=pool.STARTING_S + 5)

    removed = set(pool.prune())

    assert removed == {str(orphaned), str(dead_keeper), str(stuck)}
    assert waiting.exists() and owned.exists() and starting.exists()
    assert sleeper.poll() is None  # prune never signals a keeper that is alive and unclaimed


def test_pids_names_only_unclaimed_live_pool_processes(pool_dir: Path, sleeper: subprocess.Popen[bytes]) -> None:
    start = proc_start_time(sleeper.pid)
    _slot(pool_dir, "a", {"keeper": sleeper.pid, "keeper_start": start})
    _slot(pool_dir, "b", {"qemu": os.getpid(), "qemu_start": proc_start_time(os.getpid()),
                          "claimed_by": sleeper.pid, "claimed_by_start": start})  # a container's VM now
    _slot(pool_dir, "c", {"keeper": sleeper.pid, "keeper_start": (start or 0) + 1})  # pid reused: not ours
    assert pool.pids() == {sleeper.pid}


def test_claim_skips_claimed_and_socketless_slots(pool_dir: Path) -> None:
    _slot(pool_dir, "claimed", {"claimed_by": 1})
    _slot(pool_dir, "no-socket", {})
    assert pool.claim(KEY, os.getpid()) is None


def _running(pid: int) -> bool:
    """Alive and not a zombie (the VM stop() ends is gone, whoever reaped it)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_write_info_merges_and_replaces_atomically(tmp_path: Path) -> None:
    pool.write_info(tmp_path, keeper=1)
    pool.write_info(tmp_path, ready=2.0)
    assert json.loads((tmp_path / "spare.json").read_text()) == {"keeper": 1, "ready": 2.0}
    assert not (tmp_path / ".spare.json.tmp").exists()


def test_prune_ends_a_spare_whose_keeper_died_before_holding_it(pool_dir: Path,
                                                                sleeper: subprocess.Popen[bytes]) -> None:
    """No keeper means no claim socket and no idle limit: the VM (here a sleep this test started) is killed."""
    dead_pid, dead_start = _dead_pid()
    slot = _slot(pool_dir, "keeperless", {"keeper": dead_pid, "keeper_start": dead_start, "qemu": sleeper.pid,
                                          "qemu_start": proc_start_time(sleeper.pid)})
    assert pool.prune() == [str(slot)]
    sleeper.wait(5)  # ended (stop() may have reaped it first: then wait() has no status to give)
    assert not _running(sleeper.pid)
    assert not slot.exists()


def test_prune_spares_a_vm_handed_over_after_it_read_the_slot(pool_dir: Path, sleeper: subprocess.Popen[bytes],
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """prune read the slot while the keeper was handing its VM over; by the time it finds the keeper gone the
    slot names a live claimant. The VM (a sleep this test started) is the claimant's now: not killed."""
    dead_pid, dead_start = _dead_pid()
    vm = {"qemu": sleeper.pid, "qemu_start": proc_start_time(sleeper.pid)}
    slot = _slot(pool_dir, "handed-over", {"keeper": dead_pid, "keeper_start": dead_start, **vm,
                                           "claimed_by": os.getpid(), "claimed_by_start": proc_start_time(os.getpid())})
    stale = pool.Slot(slot, {"keeper": dead_pid, "keeper_start": dead_start, **vm})  # as read before the claim
    monkeypatch.setattr(pool, "slots", lambda key=None: [stale])
    assert pool.prune() == []
    assert slot.exists() and sleeper.poll() is None


def test_refill_keeps_the_pool_directory_private(pool_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[list[str]] = []
    monkeypatch.setattr(pool, "_spawn_detached", lambda argv, ns: started.append(argv))
    os.chmod(pool_dir, 0o755)
    pool.refill(KEY, ["keeper"])
    assert pool_dir.stat().st_mode & 0o777 == 0o700
    (slot,) = [Path(a[-1]) for a in started]
    assert slot.parent == pool_dir / KEY and slot.stat().st_mode & 0o777 == 0o700


def test_prune_finds_the_vm_of_a_keeper_killed_before_it_recorded_it(pool_dir: Path) -> None:
    """The keeper died between QEMU's launch and its first note in spare.json: the VM (here a stand-in this test
    starts, named like QEMU, with the slot's socket on its command line) is found by its command line."""
    slot = _slot(pool_dir, "unrecorded", None, age_s=pool.STARTING_S + 5)
    other = pool_dir / KEY / "other"
    fake = subprocess.Popen(["qemu-system-x86_64", "-c", "import time; time.sleep(60)", f"path={slot}/qmp.sock"],
                            executable=sys.executable)
    bystander = subprocess.Popen(["qemu-system-x86_64", "-c", "import time; time.sleep(60)", f"{other}/qmp.sock"],
                                 executable=sys.executable)
    try:
        assert pool.qemus_naming(slot) == [fake.pid]
        assert pool.prune() == [str(slot)]
        fake.wait(5)
        assert not _running(fake.pid)
        assert bystander.poll() is None
    finally:
        for p in (fake, bystander):
            p.kill()
            p.wait()


def test_a_keys_lock_goes_with_its_last_slot_unless_held(pool_dir: Path) -> None:
    from runtime.runvm import lockfile

    for key in (KEY, "gone-tb16", "held-tb16"):
        (pool_dir / f".{key}.lock").write_text("")
    _slot(pool_dir, "kept", {"claimed_by": os.getpid(), "claimed_by_start": proc_start_time(os.getpid())})
    fd = lockfile.take(pool_dir / ".held-tb16.lock")
    try:
        pool.prune()
    finally:
        assert fd is not None
        os.close(fd)
    assert sorted(p.name for p in pool_dir.glob(".*.lock")) == [".held-tb16.lock", f".{KEY}.lock"]
