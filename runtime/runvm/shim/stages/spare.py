"""Stage: take a pooled spare VM (`runvm --pool`), when one is ready for this template and cache size."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from runtime.runvm import log
from runtime.runvm.state import proc_start_time
from runtime.runvm.vm import pool


@dataclass
class Spare:
    claimed: pool.Claimed
    vm_mnt: int
    """The spare's mount namespace: its 9p export is a path there, where the rootfs must go."""

    @property
    def slot(self) -> Path:
        return self.claimed.slot

    @property
    def share_dir(self) -> Path:
        return self.claimed.slot / "share"

    @property
    def qmp_sock(self) -> Path:
        return self.claimed.slot / "qmp.sock"


def wanted(pool_flag: bool, boot: str, restoring: bool) -> bool:
    """Only --pool creates take spares; a cold boot or a restore from CRIU images needs its own VM."""
    return pool_flag and boot != "cold" and not restoring


def claim(pool_key: str, container_id: str) -> Spare | None:
    """A claimed spare (checked again by its QEMU's start time: gone, or its pid reused, means none)."""
    got = pool.claim(pool_key, os.getpid())
    if got is None:
        log.trace("no spare")
        return None
    try:
        vm_mnt = os.open(f"/proc/{got.qemu_pid}/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        vm_mnt = None
    if vm_mnt is None or proc_start_time(got.qemu_pid) != got.qemu_start:
        if vm_mnt is not None:
            os.close(vm_mnt)
        got.agent.close()
        pool.write_info(got.slot, claimed_by=None)
        return None
    # ours from now on, even if the VM in it fails: `delete` removes the slot
    pool.write_info(got.slot, container=container_id)
    log.trace("spare claimed")
    return Spare(got, vm_mnt)
