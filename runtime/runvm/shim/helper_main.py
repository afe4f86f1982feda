"""The entry of the helpers the vm-shim starts with `python -m` (vm_shim._helper): one JSON request on stdin,
one JSON answer on stdout, {"ok": true, ...} or {"ok": false, "error": ...}."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable, Coroutine
from typing import Any


def serve(run: Callable[[dict[str, Any]], Coroutine[Any, Any, dict[str, Any]]]) -> int:
    try:
        json.dump({"ok": True, **asyncio.run(run(json.load(sys.stdin)))}, sys.stdout)
        return 0
    except Exception as e:
        json.dump({"ok": False, "error": f"{e.__class__.__name__}: {e}"}, sys.stdout)
        return 1
