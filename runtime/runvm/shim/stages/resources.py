"""Stage: the VM sized for the spec's resources: vCPUs and memory hot-plugged past the template's size, the
guest told to bring them online. A pooled VM that already fits is left alone (no QMP connection at all)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from runtime.runvm import log
from runtime.runvm.shim import resize
from runtime.runvm.shim.stages import boot
from runtime.runvm.vm import qemu


@dataclass(frozen=True)
class Plugged:
    plugged_mib: int
    """Memory added to the VM: the host cgroup's allowance grows by it (limits.vm)."""


def fits(res: dict[str, Any], size: qemu.Size) -> bool:
    """Whether a VM of the template's size already satisfies res (nothing to hot-plug)."""
    return resize.cpus_needed(res) <= size.vcpus and not resize.memory_needed_mib(res)


async def apply(vm: boot.Vm, res: dict[str, Any], size: qemu.Size, max_vcpus: int, cpuset_pinned: bool) -> Plugged:
    if vm.qmp is None and fits(res, size):
        plugged: dict[str, Any] = {"warnings": [], "cpus_added": 0}  # a pooled VM as it is: QMP not needed
    else:
        client = await boot.connect_qmp(vm)
        plugged = await resize.hotplug(client.execute, res, max_vcpus)
    result = Plugged(int(plugged.get("plugged_mib") or 0))
    for w in plugged["warnings"]:
        log.warning(w)
    online = resize.online_request(plugged, cpuset_pinned)
    if online:
        await boot.agent_of(vm).request(online, timeout=30)
    return result
