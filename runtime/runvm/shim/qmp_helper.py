"""QMP for the resident vm-shim, which keeps neither qemu.qmp nor an open QMP connection (its memory is
per-container host memory): `python -m runtime.runvm.shim.qmp_helper` reads one JSON operation on stdin,
connects to the VM's QMP socket, does it and prints a JSON result. The operation is rare: a docker update past
the VM's size (network changes have their own helper, netconnect.py)."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from runtime.runvm.shim import resize
from runtime.runvm.vm import qmp


async def _run(req: dict[str, Any]) -> dict[str, Any]:
    client = await qmp.connect(Path(req["qmp_sock"]), timeout=30, name="runvm-helper")
    try:
        op = req["op"]
        if op == "hotplug":
            return await resize.hotplug(client.execute, req["resources"], int(req["max_vcpus"]))
        raise ValueError(f"unknown QMP helper operation {op!r}")
    finally:
        with contextlib.suppress(Exception):
            await client.disconnect()


if __name__ == "__main__":
    from runtime.runvm.shim.helper_main import serve

    raise SystemExit(serve(_run))
