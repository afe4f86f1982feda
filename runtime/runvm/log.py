"""runc-style logging: JSON lines in --log, the last `"level":"error"` line is what containerd reports."""

from __future__ import annotations

import json
import os
import sys
import time

_path: str | None = None
_format = "text"


def configure(path: str | None, fmt: str) -> None:
    global _path, _format
    _path, _format = path, fmt or "text"


def path() -> str | None:
    return _path


def fmt() -> str:
    return _format


def write(level: str, msg: str, **fields: object) -> None:
    now = time.time_ns()
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now // 10**9)) + f".{now % 10**9:09d}Z"
    if _format == "json":
        line = json.dumps({"level": level, "msg": msg, "time": stamp, **fields})
    else:
        extra = " ".join(f"{k}={v}" for k, v in fields.items())
        line = f'time="{stamp}" level={level} msg="{msg}"' + (f" {extra}" if extra else "")
    if _path:
        try:
            with open(_path, "a") as f:
                f.write(line + "\n")
            return
        except OSError:
            pass
    print(line, file=sys.stderr)


def error(msg: str, **fields: object) -> None:
    write("error", msg, **fields)


def warning(msg: str, **fields: object) -> None:
    write("warning", msg, **fields)


def info(msg: str, **fields: object) -> None:
    write("info", msg, **fields)


TRACE_FILE = "/run/runvm-trace.log"
_TRACE = os.environ.get("RUNVM_TRACE") or (TRACE_FILE if os.path.exists(TRACE_FILE) else None)


def trace(msg: str) -> None:
    """Timing breadcrumbs for performance work: RUNVM_TRACE=/path/file (or an existing /run/runvm-trace.log,
    for runvm started by dockerd) gets `<monotonic> <pid> msg` lines."""
    if _TRACE:
        with open(_TRACE, "a") as f:
            f.write(f"{time.monotonic():.3f} {os.getpid()} {msg}\n")
