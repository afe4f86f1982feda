"""`-m 64m` (swap included): a process allocating 100 MiB is OOM-killed, and what the container sees as its memory.

The allocator is the container's main process (busybox dd with a 100 MiB buffer), so the container's exit code and
State.OOMKilled are the documented effects; the cgroup file and MemTotal are what tools inside size themselves by.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.context import Ctx
from harness.scenario import scenario
from tests.resources._support import ABSENT, parse_pairs, read_files

MiB = 1024 * 1024
LIMIT = 64 * MiB
SCRIPT = (read_files({"limit": "/sys/fs/cgroup/memory/memory.limit_in_bytes",
                      "memsw": "/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes"})
          + "; echo memtotal_kib=$(awk '/^MemTotal:/ {print $2}' /proc/meminfo)"
          + "; exec dd if=/dev/zero of=/dev/null bs=100M count=1")


def _host_memtotal_kib() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1])
    return 0


def _bytes(raw: str) -> str:
    return f"{int(raw) // MiB} MiB" if raw.isdigit() and int(raw) < 1 << 62 else ("unlimited" if raw.isdigit() else raw)


def _memtotal(kib: str) -> str:
    """MemTotal by meaning: the host's, the limit, or something else (e.g. a VM's memory)."""
    if not kib.isdigit():
        return ABSENT
    if int(kib) == _host_memtotal_kib():
        return "host's"
    if int(kib) * 1024 == LIMIT:
        return "the limit"
    return "other"


@scenario("resources/memory")
def test_memory(ctx: Ctx) -> dict[str, Any]:
    c = ctx.run(["sh", "-c", SCRIPT], mem_limit="64m", memswap_limit="64m")
    code = ctx.wait(c, timeout=120)
    state = ctx.inspect(c)["State"]
    seen = parse_pairs(ctx.logs(c, stderr=False))
    ctx.notes.update(memtotal_kib=seen.get("memtotal_kib"), stderr=ctx.logs(c, stdout=False)[-1000:])
    return {
        "exit_code": code,
        "oom_killed": bool(state.get("OOMKilled")),
        "cgroup_limit": _bytes(seen.get("limit", ABSENT)),
        "cgroup_memsw_limit": _bytes(seen.get("memsw", ABSENT)),
        "memtotal": _memtotal(seen.get("memtotal_kib", ABSENT)),
    }
