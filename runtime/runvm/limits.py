"""The limits of a container's cgroup on the host: the spec's own, plus what the VM itself needs.

The guest enforces the spec's limits exactly (runtime/agent/cgroups.py), so the container's processes meet them
as under runc: an allocator is OOM-killed in the guest, a busy loop is throttled there. The host's cgroup at
linux.cgroupsPath holds the vm-shim and QEMU; it gets the same limits widened by the VMM's measured needs (as
Kata's sandbox-cgroup mode does), so host tools (`docker stats`, cAdvisor) see real limits and the host stops a VM
that takes more than its container may plus that allowance. The allowance is sized so that the guest's limit is
met first (docs/runvm.md, "Limits on the host", has the measurements):

- memory: the VMM's own memory (QEMU's heap and thread stacks, TCG's translation cache, the resident vm-shim) and
  the guest RAM the guest's kernel and agent dirty besides the container's own pages. A restored VM's RAM is the
  template's file mapped private: only pages the guest writes are charged to the container. A cold-booted VM's
  RAM is anonymous and its boot writes much of it (kernel, initramfs), so its allowance is larger.
- cpu: QEMU's main loop and I/O threads and the vm-shim run beside the vCPU; the guest's quota bounds the vCPU.
- pids: every QEMU thread is a task in the host's pids controller: the main loop, the RCU thread, the vCPU
  thread(s), the I/O worker pool (capped, see QEMU_THREAD_POOL_MAX), plus the vm-shim and its short-lived
  children (the OOM relay and its victim, a helper being started).

No pathlib, dataclasses or typing here: the resident vm-shim imports this module (its memory is per-container).
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

MiB = 1 << 20

TEMPLATED_OVERHEAD_MIB = 64
"""Memory beyond the spec's limit for a VM restored from the template (or a pooled spare), besides the translation
cache. Measured (bench.memory --overhead, -m 64m, tb 16): an idle container's host cgroup is 49-62 MiB while its
guest cgroup holds 2 MiB (QEMU's own anonymous memory 36.5 MiB, 16 of it the cache; guest RAM written since the
restore 10 MiB; the vm-shim 5 MiB); with an allocator OOM-killed in the guest at 64 MiB the host peak was
limit + 53-66 MiB (7 Dec 2026: idle 52.5-52.7, peak limit + 62-63). 64 MiB plus the cache covers that with 14-27
MiB to spare. A --pool create that found no spare is also charged the start-up of its replacement's keeper (about
13 MiB: the keeper's interpreter starts in the container's cgroup), peak limit + 74-76 MiB: 4-6 MiB to spare."""
COLD_OVERHEAD_MIB = 336
"""The same for a cold-booted VM: its idle host cgroup measured 306-309 MiB (anonymous guest RAM the boot wrote)."""
MEMMAP_DIVISOR = 64
"""Hot-plugged guest memory costs the guest kernel a struct page (64 bytes) per 4 KiB page, written when the
memory goes online: 1/64 of it."""
TCG_THREADS = ("main loop", "RCU", "vCPU (one thread for all vCPUs under TCG, thread=single)")
QEMU_FIXED_THREADS = len(TCG_THREADS)
QEMU_THREAD_POOL_MAX = 16
"""QEMU's I/O worker threads (9p and the OS disk's aio=threads): 64 by default; under a guest with 64 processes
writing with fsync in parallel, 23 of them appeared. 16 keeps the pids allowance small; the single TCG thread
cannot keep more busy."""
SHIM_TASKS = 1 + 2 + 1
"""The vm-shim, the OOM relay and its victim, a helper between its fork and leaving the cgroup."""
PIDS_MARGIN = 4
CPU_ALLOWANCE = 0.1
"""CPUs beyond the spec's quota: a busy loop under --cpus 1 measured 1.02 host CPUs without a host quota (the
QEMU main loop and timers), a busy loop beside 9p writes 1.09."""
DEFAULT_PERIOD_US = 100_000


def vm(boot: str = "templated", tb_mib: int = 16, plugged_mib: int = 0, vcpu_threads: int = 1) -> dict[str, Any]:
    """The facts about a container's VM the allowances depend on."""
    return {"boot": boot, "tb_mib": int(tb_mib), "plugged_mib": int(plugged_mib), "vcpu_threads": int(vcpu_threads)}


def memory_overhead(v: dict[str, Any]) -> int:
    """Bytes the host cgroup may hold beyond the spec's memory limit."""
    base = COLD_OVERHEAD_MIB if v.get("boot") == "cold" else TEMPLATED_OVERHEAD_MIB
    memmap = -(-int(v.get("plugged_mib") or 0) // MEMMAP_DIVISOR)
    return (base + int(v.get("tb_mib") or 0) + memmap) * MiB


def cpu_allowance_us(period_us: int) -> int:
    return int(CPU_ALLOWANCE * period_us)


def pids_allowance(v: dict[str, Any]) -> int:
    vcpu = int(v.get("vcpu_threads") or 1)
    return QEMU_FIXED_THREADS - 1 + vcpu + QEMU_THREAD_POOL_MAX + SHIM_TASKS + PIDS_MARGIN


def merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """The resources in force after `runc update`: a field the update gives (non-zero) replaces the old one."""
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in (base or {}).items()}
    for group, fields in (update or {}).items():
        if not isinstance(fields, dict):
            continue
        target = out.setdefault(group, {})
        for k, value in fields.items():
            if value not in (None, 0, ""):
                target[k] = value
    return out


def host_limits(res: dict[str, Any], v: dict[str, Any]) -> dict[str, Any]:
    """What to write on the host for the resources `res`: bytes, microseconds, counts; -1 lifts a limit. Only the
    keys the resources set are present (the others stay as they are, as runc leaves them)."""
    out: dict[str, Any] = {}
    mem = res.get("memory") or {}
    extra = memory_overhead(v)
    for key, name in (("limit", "memory"), ("swap", "memory_swap"), ("reservation", "memory_reservation")):
        value = mem.get(key)
        if value:
            out[name] = -1 if value < 0 else int(value) + extra
    cpu = res.get("cpu") or {}
    quota = cpu.get("quota")
    if quota:
        period = int(cpu.get("period") or DEFAULT_PERIOD_US)
        out["cpu_period"] = period
        out["cpu_quota"] = -1 if quota < 0 else int(quota) + cpu_allowance_us(period)
    elif cpu.get("period"):
        out["cpu_period"] = int(cpu["period"])
    if cpu.get("shares"):
        out["cpu_shares"] = int(cpu["shares"])
    if cpu.get("cpus"):
        out["cpuset_cpus"] = str(cpu["cpus"])
    if cpu.get("mems"):
        out["cpuset_mems"] = str(cpu["mems"])
    pids = (res.get("pids") or {}).get("limit")
    if pids:
        out["pids"] = -1 if pids < 0 else int(pids) + pids_allowance(v)
    return out


RAISABLE = ("memory", "memory_swap", "memory_reservation", "pids")


def raised(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """The limits of `new` that are higher than in `old` (or lifted, -1): what an update writes on the host before
    the guest's, so the host's limit is never below the guest's for a moment."""
    out = {}
    for k in RAISABLE:
        if k not in new or k not in old:
            continue  # absent from old: unlimited there, so not a raise
        before, after = old[k], new[k]
        if before >= 0 and (after < 0 or after > before):
            out[k] = after
    return out
