"""The oracles' inside view of a container's cgroup reads the same meanings on cgroup v1 and v2 (run here on
fake cgroup trees with the shell the snippet is written for)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.resources._support import ABSENT, UNLIMITED_V1, cgroup_view, parse_pairs

NAMES = {m: m for m in ("memory_limit", "memsw_limit", "kmem_limit", "cfs_quota_us", "cfs_period_us", "cpu_shares",
                        "cpuset_cpus", "pids_max")}


def _read(root: Path) -> dict[str, str]:
    out = subprocess.run(["sh", "-c", cgroup_view(NAMES, str(root))], capture_output=True, text=True, check=True)
    return parse_pairs(out.stdout)


def _tree(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text + "\n")
    return root


def test_v1_files_are_read_as_they_are(tmp_path: Path) -> None:
    root = _tree(tmp_path, {"memory/memory.limit_in_bytes": str(64 << 20),
                            "memory/memory.memsw.limit_in_bytes": str(128 << 20),
                            "cpu/cpu.cfs_quota_us": "50000", "cpu/cpu.cfs_period_us": "100000",
                            "cpu/cpu.shares": "512", "cpuset/cpuset.cpus": "0", "pids/pids.max": "16"})
    assert _read(root) == {"memory_limit": str(64 << 20), "memsw_limit": str(128 << 20), "kmem_limit": ABSENT,
                           "cfs_quota_us": "50000", "cfs_period_us": "100000", "cpu_shares": "512",
                           "cpuset_cpus": "0", "pids_max": "16"}


def test_v2_files_are_read_in_v1_meaning(tmp_path: Path) -> None:
    root = _tree(tmp_path, {"cgroup.controllers": "cpuset cpu memory pids", "memory.max": str(64 << 20),
                            "memory.swap.max": str(64 << 20), "cpu.max": "50000 100000", "cpu.weight": "20",
                            "cpuset.cpus": "0", "pids.max": "16"})
    assert _read(root) == {"memory_limit": str(64 << 20), "memsw_limit": str(128 << 20), "kmem_limit": ABSENT,
                           "cfs_quota_us": "50000", "cfs_period_us": "100000", "cpu_shares": "weight 20",
                           "cpuset_cpus": "0", "pids_max": "16"}


@pytest.mark.parametrize("swap", ["max", None])
def test_v2_unlimited_reads_as_v1s_unlimited(tmp_path: Path, swap: str | None) -> None:
    files = {"cgroup.controllers": "cpu memory pids", "memory.max": "max", "cpu.max": "max 100000",
             "pids.max": "max"}
    if swap is not None:
        files["memory.swap.max"] = swap
    seen = _read(_tree(tmp_path, files))
    assert seen["memory_limit"] == UNLIMITED_V1 and seen["cfs_quota_us"] == "-1" and seen["pids_max"] == "max"
    assert seen["memsw_limit"] == UNLIMITED_V1
    assert seen["cpuset_cpus"] == ABSENT and seen["cpu_shares"] == ABSENT
