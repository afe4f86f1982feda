"""A run killed mid-scenario (SIGINT or SIGKILL) leaves containers, networks and daemons behind; the next run
removes them and reports what it removed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import docker
import pytest

from harness import labels, paths
from harness.cleanup import live_runs, remove_leftovers

pytestmark = pytest.mark.docker

SLOW_SCENARIO = "tests/runtime_commands/test_lifecycle.py"


def _start_run(run_dir: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "pytest", SLOW_SCENARIO, "--runtime", "runc",
                             "--run-dir", str(run_dir), "-q", "-p", "no:cacheprovider"], cwd=paths.REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def _labelled(client: docker.DockerClient, run_id: str) -> list[str]:
    return [c.name for c in client.containers.list(all=True, filters={"label": f"{labels.RUN}={run_id}"})]


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_the_next_run_removes_and_reports_leftovers(tmp_path: Path, docker_client: docker.DockerClient,
                                                    sig: int) -> None:
    run_dir = tmp_path / f"interrupted-{sig}"
    proc = _start_run(run_dir)
    run_id = run_dir.name
    deadline = time.monotonic() + 120
    while not _labelled(docker_client, run_id):  # wait until the scenario has containers up
        assert proc.poll() is None, "the run ended before it created anything"
        assert time.monotonic() < deadline, "no container appeared within 120 s"
        time.sleep(0.2)
    os.killpg(proc.pid, sig)  # the whole process group, as a terminal's ^C or an OOM killer would
    proc.wait(timeout=60)
    if sig == signal.SIGINT:
        # pytest handles ^C: the cell's own clean-up may run; either way nothing may survive the next start
        pass
    assert run_id not in live_runs()
    left_before = _labelled(docker_client, run_id)
    removed = remove_leftovers(docker_client)
    assert _labelled(docker_client, run_id) == []
    for name in left_before:
        assert any(name in line for line in removed), f"{name} was removed but not reported: {removed}"
