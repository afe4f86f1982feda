"""Growing a running VM when a container's limits need more than it has: vCPUs and memory are hot-plugged over
QMP (the guest's cgroups then enforce the exact limit, as runc's would). VMs never shrink: a lower limit is a
guest cgroup change only."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable

from runtime.runvm import log

TYPE_CHECKING = False  # not typing's: importing typing costs every resident shim ~0.7 MB
if TYPE_CHECKING:
    from typing import Any

    Execute = Callable[..., Awaitable[Any]]

GUEST_OVERHEAD_MIB = 160
"""Room the guest kernel and agent need besides the container's own memory."""
DIMM_STEP_MIB = 128


def cpus_needed(res: dict[str, Any]) -> int:
    cpu = res.get("cpu") or {}
    need = 1
    if cpu.get("quota") and cpu.get("quota", 0) > 0 and cpu.get("period"):
        need = max(need, math.ceil(cpu["quota"] / cpu["period"]))
    if cpu.get("cpus"):
        for part in str(cpu["cpus"]).split(","):
            need = max(need, int(part.split("-")[-1]) + 1)
    return need


def memory_needed_mib(res: dict[str, Any]) -> int:
    limit = (res.get("memory") or {}).get("limit") or 0
    return math.ceil(limit / (1 << 20)) + GUEST_OVERHEAD_MIB if limit > 0 else 0


async def hotplug(execute: Execute, res: dict[str, Any], max_vcpus: int) -> dict[str, Any]:
    """The QMP half: plug what res needs. Returns warnings (the host has fewer CPUs), how many vCPUs were added
    and how many are there now, for the agent to bring online."""
    warnings = []
    want_cpus = cpus_needed(res)
    if want_cpus > max_vcpus:
        warnings.append(f"asked for {want_cpus} CPUs; the VM can have at most {max_vcpus} (host CPUs)")
        want_cpus = max_vcpus
    slots = await execute("query-hotpluggable-cpus")
    present = [s for s in slots if s.get("qom-path")]
    free = [s for s in slots if not s.get("qom-path")]
    added = 0
    while len(present) + added < want_cpus and free:
        slot = free.pop(0)
        await execute("device_add", {"driver": slot["type"], "id": f"hcpu{len(present) + added}", **slot["props"]})
        added += 1
    if added:
        log.info(f"hot-plugged {added} vCPU(s)")
    want_mib = memory_needed_mib(res)
    plugged_mib = None
    if want_mib:
        info = await execute("query-memory-size-summary")
        plugged_mib = info.get("plugged-memory", 0) // (1 << 20)
        have_mib = info.get("base-memory", 0) // (1 << 20) + plugged_mib
        if want_mib > have_mib:
            step = math.ceil((want_mib - have_mib) / DIMM_STEP_MIB) * DIMM_STEP_MIB
            n = len(await execute("query-memory-devices"))
            await execute("object-add", {"qom-type": "memory-backend-ram", "id": f"hmem{n}", "size": step << 20})
            await execute("device_add", {"driver": "pc-dimm", "id": f"hdimm{n}", "memdev": f"hmem{n}"})
            log.info(f"hot-plugged {step} MiB of memory")
            plugged_mib += step
    out = {"warnings": warnings, "cpus_added": added, "cpus_present": len(present) + added}
    if plugged_mib is not None:
        out["plugged_mib"] = plugged_mib  # all the hot-plugged memory now (the host allowance grows with it)
    return out


def online_request(plugged: dict[str, Any], pinned: bool) -> dict[str, Any] | None:
    """The agent half: the request that brings new vCPUs online (None when none were added)."""
    if not plugged.get("cpus_added"):
        return None
    return {"op": "online_cpus", "want": plugged["cpus_present"], "pinned": pinned}
