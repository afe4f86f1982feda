"""Stage: the container on record: its state.json (what every later command reads), and, for a create that
took a pool spare, the spare's replacement started."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runtime.runvm.state import CREATED, RUNNING, State, Store, now_rfc3339, proc_start_time
from runtime.runvm.vm import pool


@dataclass(frozen=True)
class RecordInput:
    id: str
    bundle: Path
    rootfs: Path
    annotations: dict[str, Any]
    restored: bool
    boot: dict[str, Any]
    qemu_pid: int
    init_guest_pid: int
    cgroup_path: str
    pool_slot: str | None


def state_of(inp: RecordInput, pid: int, pid_start: int, created: str) -> State:
    b = inp.boot
    return State(
        id=inp.id, bundle=str(inp.bundle), rootfs=str(inp.rootfs), status=RUNNING if inp.restored else CREATED,
        pid=pid, pid_start=pid_start, created=created, annotations=inp.annotations, accel=b["accel"],
        boot=b["boot"], boot_reason=b["reason"], qemu_pid=inp.qemu_pid, init_guest_pid=inp.init_guest_pid,
        extra={"template": b.get("template"), "accel_why": b.get("accel_why"), "cgroup_path": inp.cgroup_path,
               "pool_slot": inp.pool_slot},
    )


def save(store: Store, inp: RecordInput) -> State:
    st = state_of(inp, os.getpid(), proc_start_time(os.getpid()) or 0, now_rfc3339())
    store.save(st)
    return st


def refill_pool(wanted: bool, boot: dict[str, Any], pool_key: str, tb_mib: int | None, orig_mnt: int) -> None:
    """A templated --pool create starts the next spare (in the daemon's mount namespace, not ours)."""
    if wanted and boot.get("boot") == "templated":
        with contextlib.suppress(OSError):
            pool.refill(pool_key, pool.keeper_argv(tb_mib), orig_mnt)
