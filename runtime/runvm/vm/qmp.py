"""QMP through qemu.qmp: connecting, VM snapshots to a file (QEMU 7.2 has no file: URI) and restores."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from qemu.qmp import QMPClient

from runtime.runvm import wait
from runtime.runvm.errors import RunvmError

IGNORE_SHARED = [{"capability": "x-ignore-shared", "state": True}]


async def connect(sock: Path, timeout: float = 10.0, name: str = "runvm",
                  alive: Callable[[], bool] = lambda: True) -> QMPClient:
    client = QMPClient(name)
    tried = [False]

    def check() -> None:
        if tried[0] and not alive():
            raise RunvmError("QEMU exited before its QMP socket answered")

    async def attempt(_left: float) -> QMPClient:
        tried[0] = True
        await client.connect(str(sock))
        return client

    return await wait.until_async(attempt, f"QEMU's QMP socket {sock} to answer", timeout, retry_on=(Exception,),
                                  check=check, interval=0.01)


async def _query(qmp: QMPClient, cmd: str) -> dict[str, Any]:
    """A query's answer: QMP returns a JSON object for every query-* used here."""
    reply = await qmp.execute(cmd)
    return reply if isinstance(reply, dict) else {}


class _NotYet(Exception):
    """A migration still under way: wait.until_async asks again."""


async def _wait_migration(qmp: QMPClient, timeout: float) -> dict[str, Any]:
    async def completed(_left: float) -> dict[str, Any]:
        info = await _query(qmp, "query-migrate")
        status = info.get("status")
        if status == "completed":
            return info
        if status in ("failed", "cancelled"):
            raise RunvmError(f"migration {status}: {info.get('error-desc', '')}")
        raise _NotYet(f"still {status}")

    return await wait.until_async(completed, "the migration to complete", timeout, retry_on=(_NotYet,),
                                  interval=0.01)


async def save(qmp: QMPClient, path: Path, timeout: float = 120) -> None:
    """Stop the VM and write its device state (RAM in a shared file is skipped: x-ignore-shared)."""
    await qmp.execute("stop")
    await qmp.execute("migrate-set-capabilities", {"capabilities": IGNORE_SHARED})
    await qmp.execute("migrate", {"uri": f"exec:cat > {path}"})
    await _wait_migration(qmp, timeout)
    if not path.exists() or os.path.getsize(path) == 0:
        raise RunvmError(f"snapshot {path} was not written")


async def restore(qmp: QMPClient, path: Path, timeout: float = 30) -> None:
    """Load a snapshot into a QEMU started with -incoming defer; returns once the VM runs."""
    await qmp.execute("migrate-set-capabilities", {"capabilities": IGNORE_SHARED})
    await qmp.execute("migrate-incoming", {"uri": f"exec:cat {path}"})
    async def running(_left: float) -> None:
        status = (await _query(qmp, "query-status")).get("status")
        if status == "running":
            return
        mig = await _query(qmp, "query-migrate")
        if mig.get("status") == "failed":
            raise RunvmError(f"restore from {path} failed: {mig.get('error-desc', '')}")
        if status in ("paused", "postmigrate", "prelaunch") and mig.get("status") == "completed":
            await qmp.execute("cont")
            return
        raise _NotYet(f"still {status}/{mig.get('status')}")

    await wait.until_async(running, f"the restore from {path} to run", timeout, retry_on=(_NotYet,), interval=0.005)
