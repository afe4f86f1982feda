"""Labels on everything the suite creates, so a clean-up can find it even after a crash."""

from __future__ import annotations

import os
import secrets
import time

RUN = "vmparity.run"
CELL = "vmparity.cell"


def new_run_id() -> str:
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + f"-{os.getpid()}-{secrets.token_hex(2)}"


def of(run_id: str, cell: str) -> dict[str, str]:
    return {RUN: run_id, CELL: cell}
