"""Keeping the shims' own words out of the container's stdio."""

from __future__ import annotations

import os
import sys


def quiet_python_streams(log_path: str | os.PathLike[str]) -> None:
    """fds 0/1/2 are the container's stdio: nothing of the shim's own (a warning, asyncio's complaints at exit)
    may ever be written there, so Python's sys.stdout/sys.stderr go to the shim's log file."""
    try:
        sink = open(log_path, "a", buffering=1)  # noqa: SIM115 - lives as long as the process
    except OSError:
        sink = open(os.devnull, "w")  # noqa: SIM115
    sys.stdout = sys.stderr = sink
