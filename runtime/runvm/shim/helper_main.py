"""The entry of the helpers the vm-shim starts with `python -m` (vm_shim._helper): one JSON request on stdin,
one JSON answer on stdout, {"ok": true, ...} or {"ok": false, "error": ...}."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable, Coroutine
from typing import Any


def _die_with_the_shim() -> None:
    """A helper is the vm-shim's child and works for it alone: it must not outlive it. Under Docker 28 the network
    of a container that is being removed changes while its VM stops, so a reconcile could start then and wait for
    a QMP socket that is gone, in the container's cgroup, long after the container (PR_SET_PDEATHSIG, then a check
    that the shim had not already gone before it was set)."""
    import ctypes
    import os
    import signal

    parent = os.getppid()
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent or parent == 1:
        os._exit(1)


def serve(run: Callable[[dict[str, Any]], Coroutine[Any, Any, dict[str, Any]]]) -> int:
    _die_with_the_shim()
    try:
        json.dump({"ok": True, **asyncio.run(run(json.load(sys.stdin)))}, sys.stdout)
        return 0
    except Exception as e:
        json.dump({"ok": False, "error": f"{e.__class__.__name__}: {e}"}, sys.stdout)
        return 1
