"""What a stack's machine brought back: its results, marked with the machine they were observed on."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

from harness import results, schema
from harness.stack_data import StackData

if TYPE_CHECKING:
    from harness.vmhost.machine import Outcome


def tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"({path}: nothing)"


def _qemu_version() -> str:
    out = subprocess.run(["qemu-system-x86_64", "--version"], capture_output=True, text=True).stdout
    return out.splitlines()[0] if out else "unknown"


def annotate(results_path: Path, stack: StackData, outcome: Outcome) -> None:
    """provenance.machine: the run's host was a virtual machine booted here, and how it was made."""
    doc = results.load(results_path)
    doc["provenance"]["machine"] = {
        "kind": "qemu", "accel": "tcg (software emulation)", "qemu": _qemu_version(), "cpus": stack.cpus,
        "memory_mib": stack.memory_mib, "booted_on": os.uname().nodename, "wall_s": round(outcome.wall_s, 1),
        "suite_status": outcome.status}
    schema.validate("results", doc)
    results.write_json_atomic(results_path, doc)
