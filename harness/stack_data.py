"""The Docker stacks the matrix can be observed on, described as data in stacks/*.yaml.

A limitation observed on one Docker, containerd and runc may be gone, or new, on another, so a cell names the
stack it was observed on. A stack says where its dockerd runs and from which packages; harness/stacks.py
brings it up. Adding a stack (another Debian suite, another machine) is adding a file.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml

from harness import paths, schema

HOST = "host"
CONTAINER = "container"


@dataclass(frozen=True)
class StackData:
    name: str
    description: str
    kind: str
    order: int = 100
    suite: str | None = None
    mirror: str | None = None
    packages: tuple[str, ...] = ()
    """The Debian packages its root filesystem holds (kind container)."""


@cache
def load(directory: Path = paths.STACKS) -> dict[str, StackData]:
    """Every stack by name, leading one first. A bad file is an error naming the file."""
    found: dict[str, StackData] = {}
    for f in sorted(directory.glob("*.yaml")):
        raw = yaml.safe_load(f.read_text())
        try:
            schema.validate("stack", raw)
        except schema.SchemaError as e:
            raise schema.SchemaError(f"{f}: {e}") from None
        if raw["name"] != f.stem:
            raise schema.SchemaError(f"{f}: names stack {raw['name']!r}; the file must be {raw['name']}.yaml")
        debian = raw.get("debian") or {}
        found[raw["name"]] = StackData(
            name=raw["name"], description=raw["description"], kind=raw["kind"], order=raw.get("order", 100),
            suite=debian.get("suite"), mirror=debian.get("mirror"), packages=tuple(debian.get("packages") or ()))
    return dict(sorted(found.items(), key=lambda kv: (kv[1].order, kv[0])))


def get(name: str) -> StackData:
    stacks = load()
    if name not in stacks:
        raise SystemExit(f"vmparity: no stack {name!r}; stacks/ describes {', '.join(stacks) or 'none'}")
    return stacks[name]


def host_stack() -> StackData:
    """The stack that is the host's own daemon (the default for a run)."""
    for s in load().values():
        if s.kind == HOST:
            return s
    raise SystemExit(f"vmparity: no stack in {paths.STACKS} describes the host's own dockerd (kind: host)")
