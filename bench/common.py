"""What the benchmarks share: the runtimes to compare and how to print a comparison."""

from __future__ import annotations

import statistics
import subprocess
from collections.abc import Sequence

import docker
from tabulate import tabulate

from harness.setup.images import IMAGE

DEFAULT_RUNTIMES = ("runc", "runvm", "runvm-tb32", "runvm-pool", "runvm-pool-tb32", "runvm-cold", "runsc")
LABEL = {"vmparity.bench": "1"}


def client() -> docker.DockerClient:
    return docker.DockerClient(base_url="unix:///var/run/docker.sock", timeout=300)


def available(wanted: Sequence[str]) -> list[str]:
    have = set(client().info().get("Runtimes", {}))
    return [r for r in wanted if r in have]


def image() -> str:
    return f"{IMAGE}:latest"


def docker_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, check=False)


def table(rows: list[dict[str, object]], baseline_key: str, value_key: str, unit: str) -> str:
    """Rows with a value per runtime, plus the ratio to the first row (runc)."""
    base = next((r[value_key] for r in rows if r["runtime"] == baseline_key), None)
    out = []
    for r in rows:
        v = r[value_key]
        ratio = f"{v / base:.2f}x" if isinstance(v, int | float) and base else "-"
        out.append([r["runtime"], f"{v:.3f} {unit}" if isinstance(v, float) else f"{v} {unit}", ratio,
                    *[r.get(k, "") for k in r if k not in ("runtime", value_key)]])
    extra = [k for k in rows[0] if k not in ("runtime", value_key)] if rows else []
    return tabulate(out, headers=["runtime", value_key, f"vs {baseline_key}", *extra])


def median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")
