"""`docker run --kernel-memory 64m`: what Docker says and keeps, and whether any kmem limit is enforced inside.

Recent kernels and runtimes ignore the cgroup v1 kmem knob, so "no limit" (no file, or an unlimited value) is the
normal outcome; a runtime that enforces a limit where runc does not, or refuses the flag, shows up as a difference.
"""

from __future__ import annotations

from typing import Any

from harness.context import Ctx
from harness.scenario import scenario
from tests.resources._support import ABSENT, cgroup_view, cli_run, parse_pairs

MiB = 1024 * 1024
UNLIMITED = 1 << 62


def _limit(raw: str) -> str:
    """`none` when nothing is enforced (no file, or the kernel's "unlimited"), else the limit in MiB."""
    if raw == ABSENT or not raw.isdigit() or int(raw) >= UNLIMITED:
        return "none"
    return f"{int(raw) // MiB} MiB"


def _warning(text: str) -> str:
    """Docker's warnings by meaning, so the wording of a CLI or daemon release does not matter."""
    low = text.lower()
    if "deprecated" in low:
        return "deprecated"
    if "does not support kernel memory" in low or "limitation discarded" in low:
        return "discarded: kernel lacks kmem"
    return text


@scenario("resources/kernel-memory")
def test_kernel_memory(ctx: Ctx) -> dict[str, Any]:
    c, warnings = cli_run(ctx, ["--kernel-memory=64m"], ["sleep", "600"])
    kept = int(ctx.inspect(c)["HostConfig"].get("KernelMemory") or 0)
    inside = parse_pairs(ctx.sh(c, cgroup_view({"kmem": "kmem_limit"})))
    return {
        "warnings": sorted({_warning(w) for w in warnings}),
        "kept_by_docker_mib": kept // MiB,
        "kmem_limit_inside": _limit(inside.get("kmem", ABSENT)),
    }
