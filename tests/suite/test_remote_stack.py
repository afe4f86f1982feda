"""A second host: the cgroup v2 machine (stacks/cgroup2.yaml) runs a scenario through `vmparity remote`, its
shard comes back with the machine's provenance and v2 observations, it merges with a run on this host into one
matrix with a column per runtime and stack, and the machine leaves nothing running or on disk behind."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from harness import paths, results, stack_data
from harness.vmhost import image, machine

pytestmark = [pytest.mark.docker, pytest.mark.slow]

SCENARIO = "tests/resources/test_memory.py"


def _vmparity(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], cwd=paths.REPO, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture(scope="module")
def shard(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("remote") / "cgroup2-shard"
    done = _vmparity("remote", "cgroup2", "--run-dir", str(run_dir), "--timeout", "900", "--no-render",
                     "--", SCENARIO, "--runtime", "runc", "--runtime", "crun", timeout=1500)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    return run_dir


def test_the_shard_was_observed_on_a_cgroup_v2_host_with_the_current_stack(shard: Path) -> None:
    doc = results.load(shard / "results.json")
    prov = doc["provenance"]
    assert prov["host"]["cgroup"].startswith("v2"), prov["host"]
    assert prov["stack"]["name"] == "cgroup2" and prov["stack"]["components"]["cgroup"].startswith("v2")
    assert prov["stack"]["packages"]["docker.io"].startswith("28."), prov["stack"]["packages"]
    assert prov["machine"]["kind"] == "qemu" and prov["machine"]["suite_status"] == 0
    assert prov["suite"]["commit"] != "uncommitted"  # the copy named the commit it was made at
    cells = {c["runtime"]: c for c in doc["cells"] if c["scenario"] == "resources/memory"}
    assert cells["runc"]["outcome"] == "same" and cells["crun"]["outcome"] == "same", cells
    assert "runvm" not in doc["runtimes"]


def test_the_host_side_oracle_read_the_machine_s_v2_cgroup(shard: Path) -> None:
    notes = [json.loads(p.read_text()) for p in (shard / "cells" / "resources__memory").rglob("notes.json")]
    assert notes, list((shard / "cells").rglob("*"))
    for n in notes:
        assert n["host_idle"]["version"] == 2 and n["host_idle"]["found"], n["host_idle"]
        assert n["host_idle"]["memory_limit"] == 64 << 20
        assert all(d.startswith("/sys/fs/cgroup/docker/") for d in n["host_idle"]["dirs"].values())
        assert n["host_after_hog"]["oom_kills"] >= 1


def test_the_shard_merges_with_a_run_here_into_columns_per_stack(shard: Path, tmp_path: Path) -> None:
    here = tmp_path / "here"
    done = _vmparity("run", "--stack", "debian12", "--run-dir", str(here), "--plain", "--no-render",
                     "--runtime", "runc", SCENARIO, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:]
    out = tmp_path / "merged" / "results.json"
    done = _vmparity("merge", str(here / "results.json"), str(shard / "results.json"), "--out", str(out),
                     timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    merged = results.load(out)
    assert merged["provenance"]["stack_order"] == ["debian12", "cgroup2"]
    assert {"runc@debian12", "runc@cgroup2", "crun@cgroup2"} <= set(merged["runtimes"])
    hosts = {p["host"]["hostname"] for p in merged["hosts"].values()}
    assert "vmparity-cgroup2" in hosts and len(hosts) == 2


def test_nothing_of_the_machine_is_left(shard: Path) -> None:
    stack = stack_data.get("cgroup2")
    work = image.store(stack) / "runs"
    assert not work.exists() or not any(work.iterdir()), list(work.iterdir())
    qemus = [p.pid for p in psutil.process_iter(["cmdline"]) if str(shard) in " ".join(p.info["cmdline"] or [])]
    assert qemus == []
    assert machine.remove_leftovers(stack) == []
