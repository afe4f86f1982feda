"""The harness classifies a misbehaving runtime as what it is: a hang is timed-out, a leak or a host change is
host-impact, and nothing stays behind. The runtime is runc behind tests/suite/faulty_runtime.py, registered
with a disposable dockerd; the cells run through the real CellRunner.execute against real Docker."""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import pytest

from harness import cleanup, labels, procs
from harness.cells import CellRunner
from harness.classify import Observed, classify
from harness.cleanup import RunLock
from harness.context import Ctx, Evidence
from harness.daemon import DisposableDaemon
from harness.outcomes import Outcome
from harness.runtimes import RuntimeInfo
from harness.scenario import Scenario
from harness.setup.images import IMAGE
from harness.stacks import Endpoint

pytestmark = [pytest.mark.disposable, pytest.mark.skipif(os.geteuid() != 0, reason="needs root and Docker")]

WRAPPER = Path(__file__).with_name("faulty_runtime.py")
MODES = ("hang-create", "leak-process", "leak-shim", "write-sysctl")
TIMEOUT_S = 15.0


def faulty(mode: str) -> str:
    return f"vmp-fault-{mode}"


@dataclass
class FaultSession:
    """What CellRunner.execute reads of a run, bound to the disposable daemon."""

    client: docker.DockerClient
    exec_root: Path
    run_id: str = field(default_factory=labels.new_run_id)
    image: str = f"{IMAGE}:latest"
    baseline: str = "runc"
    available: dict[str, RuntimeInfo] = field(default_factory=dict)
    registry: Any = None
    endpoint: Any = None
    """The daemon as a stack endpoint (the host's kind: the harness reaches it directly)."""

    def __post_init__(self) -> None:
        self.lock = RunLock(self.run_id)
        self.available = {faulty(m): RuntimeInfo(faulty(m), str(WRAPPER), [f"--vmp-fault={m}"]) for m in MODES}
        self.available["runc"] = RuntimeInfo("runc", "runc")


@pytest.fixture(scope="module")
def daemon() -> Iterator[DisposableDaemon]:
    WRAPPER.chmod(WRAPPER.stat().st_mode | stat.S_IXUSR)
    d = DisposableDaemon(labels.new_run_id(), runtimes={
        faulty(m): {"path": str(WRAPPER), "runtimeArgs": [f"--vmp-fault={m}"]} for m in MODES})
    d.start()
    yield d
    assert d.stop() == [], "the disposable daemon had to be torn down by force"


@pytest.fixture
def runner(daemon: DisposableDaemon) -> Iterator[tuple[CellRunner, FaultSession]]:
    s = FaultSession(daemon.client, Path(daemon.record.exec_root))
    s.endpoint = Endpoint("disposable", daemon.host, Path(daemon.record.exec_root), daemon.record.pid, "host")
    yield CellRunner(s), s  # type: ignore[arg-type]
    s.lock.release()


def sleeper(ctx: Ctx) -> dict[str, Any]:
    c = ctx.run(["sleep", "600"], network_mode="none")
    return {"running": ctx.inspect(c)["State"]["Running"]}


SPEC = Scenario("suite/fault-probe", sleeper, host_sensitive=True, timeout=TIMEOUT_S)


def execute(runner: tuple[CellRunner, FaultSession], runtime: str, tmp_path: Path) -> Observed:
    cells, _ = runner
    return cells.execute(SPEC, runtime, {}, Evidence(tmp_path / runtime))


def nothing_left(s: FaultSession) -> None:
    ids = [c.id for c in s.client.containers.list(all=True)]
    assert ids == [], f"containers left on the daemon: {ids}"
    wrappers = [pid for pid in map(int, filter(str.isdigit, os.listdir("/proc")))
                if str(WRAPPER) in procs.cmdline(pid)]
    assert wrappers == [], f"wrapper processes survived: {wrappers}"
    created = set(s.lock.ledger.read_text().split()) if s.lock.ledger.exists() else set()
    assert created, "the cell recorded no container"
    assert cleanup.orphan_shims(created, s.client) == {}, "a shim outlived its container"


def test_a_good_runtime_is_same_and_leaves_nothing(runner: tuple[CellRunner, FaultSession],
                                                    tmp_path: Path) -> None:
    base = execute(runner, "runc", tmp_path)
    assert base.observation == {"running": True} and base.host_changes == (), base
    assert classify(base, base) == Outcome.SAME
    nothing_left(runner[1])


def test_a_hung_create_is_timed_out_within_the_scenario_timeout(runner: tuple[CellRunner, FaultSession],
                                                                 tmp_path: Path) -> None:
    base = execute(runner, "runc", tmp_path)
    started = time.monotonic()
    hung = execute(runner, faulty("hang-create"), tmp_path)
    took = time.monotonic() - started
    assert hung.timed_out is not None and hung.error is None, hung
    assert "scenario timeout" in hung.timed_out
    assert took < TIMEOUT_S + 45, f"the hung cell took {took:.0f}s"
    assert classify(base, hung) == Outcome.TIMED_OUT
    assert hung.host_changes == (), hung.host_changes
    nothing_left(runner[1])


def test_a_leaked_process_in_the_containers_cgroup_is_host_impact(runner: tuple[CellRunner, FaultSession],
                                                                   tmp_path: Path) -> None:
    base = execute(runner, "runc", tmp_path)
    leaked = execute(runner, faulty("leak-process"), tmp_path)
    found = [c for c in leaked.host_changes if "still in the cgroup" in c]
    try:
        assert found, leaked.host_changes
        assert classify(base, leaked) == Outcome.HOST_IMPACT
    finally:
        for line in found:  # the test's own clean-up: the harness reports it, the test removes it
            procs.kill_tree(int(line.split()[3]))


def test_a_leaked_shim_is_host_impact_and_is_killed(runner: tuple[CellRunner, FaultSession],
                                                     tmp_path: Path) -> None:
    base = execute(runner, "runc", tmp_path)
    leaked = execute(runner, faulty("leak-shim"), tmp_path)
    shims = [c for c in leaked.host_changes if "orphan containerd shim" in c]
    assert shims, leaked.host_changes
    assert classify(base, leaked) == Outcome.HOST_IMPACT
    pid = int(shims[0].split("orphan containerd shim ")[1].split()[0])
    assert not procs.alive(pid), "the orphan shim was reported but not killed"


def test_a_host_sysctl_written_by_the_runtime_is_host_impact(runner: tuple[CellRunner, FaultSession],
                                                              tmp_path: Path) -> None:
    knob = Path("/proc/sys/vm/swappiness")
    before = knob.read_text()
    base = execute(runner, "runc", tmp_path)
    try:
        changed = execute(runner, faulty("write-sysctl"), tmp_path)
    finally:
        knob.write_text(before)
    assert any("sysctl vm.swappiness" in c for c in changed.host_changes), changed.host_changes
    assert classify(base, changed) == Outcome.HOST_IMPACT
