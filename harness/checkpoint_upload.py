"""Retry `docker start --checkpoint` across a Docker/containerd race that is not the runtime's doing.

At `docker checkpoint create` containerd tars the runtime's checkpoint into its content store; Docker unpacks it
and deletes only the image record, leaving the blob to containerd's asynchronous garbage collector. At
`docker start --checkpoint` Docker re-tars the unpacked directory, which yields the very same bytes, and its
upload fails with "already exists" when the collector has not run yet (seconds on a loaded host). The restore
works once the blob is gone, so the error is waited out rather than charged to the runtime under test.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from subprocess import CompletedProcess
from typing import Any

STALE_BLOB = re.compile(r"failed to upload checkpoint to containerd: .*already exists")


def is_stale_blob(proc: CompletedProcess[Any]) -> bool:
    err = proc.stderr.decode(errors="replace") if isinstance(proc.stderr, bytes) else str(proc.stderr or "")
    return proc.returncode != 0 and STALE_BLOB.search(err) is not None


def start_from_checkpoint(start: Callable[[], CompletedProcess[Any]], patience: float = 60,
                          sleep: Callable[[float], None] = time.sleep,
                          clock: Callable[[], float] = time.monotonic) -> tuple[CompletedProcess[Any], int]:
    """Run start() until it is not refused for the stale blob or patience runs out: the last result, and how
    many attempts were refused for it."""
    deadline = clock() + patience
    stale = 0
    delay = 0.5
    while True:
        proc = start()
        if not is_stale_blob(proc) or clock() + delay > deadline:
            return proc, stale
        stale += 1
        sleep(delay)
        delay = min(delay * 2, 5)
