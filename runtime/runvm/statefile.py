"""state.json, the lean way: the resident shim updates it for the container's whole life and must not pay for
dataclasses (inspect, ast, tokenize) or tempfile (random, hashlib, shutil) to do so."""

from __future__ import annotations

import json
import os

TYPE_CHECKING = False  # not typing's: importing typing costs every resident shim ~0.7 MB
if TYPE_CHECKING:
    from typing import Any

CREATED, RUNNING, PAUSED, STOPPED = "created", "running", "paused", "stopped"


def read(state_dir: str) -> dict[str, Any]:
    with open(os.path.join(state_dir, "state.json")) as f:
        return json.load(f)


def write(state_dir: str, doc: dict[str, Any]) -> None:
    tmp = os.path.join(state_dir, f".state.{os.getpid()}.tmp")
    with open(tmp, "w") as f:
        json.dump(doc, f)
    os.replace(tmp, os.path.join(state_dir, "state.json"))


def update(state_dir: str, **changes: Any) -> dict[str, Any]:
    doc = read(state_dir)
    doc.update(changes)
    write(state_dir, doc)
    return doc
