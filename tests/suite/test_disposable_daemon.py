"""A disposable dockerd whose default runtime is runsc: it runs a container, and its teardown leaves no process,
mount, netns, socket, bridge or directory behind."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from harness import labels, procs
from harness.daemon import DisposableDaemon
from harness.setup.images import IMAGE

pytestmark = pytest.mark.docker


def _mentions(path: str) -> list[str]:
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            argv = " ".join(procs.cmdline(int(entry.name)))
            if path in argv:
                found.append(f"{entry.name}: {argv[:120]}")
    return found


def test_runs_a_container_under_runsc_and_leaves_nothing(docker_client: object) -> None:
    d = DisposableDaemon(labels.new_run_id(), default_runtime="runsc")
    d.start()
    rec = d.record
    try:
        info = d.client.info()
        assert info["DefaultRuntime"] == "runsc"
        out = d.client.containers.run(f"{IMAGE}:latest", ["echo", "hello-from-disposable"], remove=True,
                                      network_mode="none")
        assert out.decode().strip() == "hello-from-disposable"
        assert Path(d.socket).exists()
    finally:
        d.stop()
    assert _mentions(rec.exec_root) == [] and _mentions(rec.data_root) == []
    assert procs.mounts_under(rec.exec_root) == [] and procs.mounts_under(rec.data_root) == []
    assert not Path(rec.exec_root).exists() and not Path(rec.data_root).parent.exists()
    assert not Path(f"/sys/class/net/{rec.bridge}").exists()
    assert not Path(d.socket).exists()
