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
VM = "vm"
THIS_MACHINE = Path("/etc/vmparity/stack")
"""On a machine made to be one stack's host (a kind-vm stack's disk image), the name of that stack."""


@dataclass(frozen=True)
class StackData:
    name: str
    description: str
    kind: str
    order: int = 100
    suite: str | None = None
    mirror: str | None = None
    packages: tuple[str, ...] = ()
    """The Debian packages its root filesystem holds (kinds container and vm)."""
    runtimes: tuple[str, ...] = ()
    """The runtimes registered there; empty: every runtime whose packages it holds."""
    cpus: int = 0
    memory_mib: int = 0
    disk_gib: int = 0
    """The machine's size (kind vm)."""

    @property
    def local(self) -> bool:
        """Is this machine the stack's own host? (Inside a kind-vm stack's machine, its dockerd is the host's.)"""
        return self.kind == HOST or this_machine() == self.name


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
        debian, vm = raw.get("debian") or {}, raw.get("vm") or {}
        found[raw["name"]] = StackData(
            name=raw["name"], description=raw["description"], kind=raw["kind"], order=raw.get("order", 100),
            suite=debian.get("suite"), mirror=debian.get("mirror"), packages=tuple(debian.get("packages") or ()),
            runtimes=tuple(raw.get("runtimes") or ()), cpus=vm.get("cpus", 0), memory_mib=vm.get("memory_mib", 0),
            disk_gib=vm.get("disk_gib", 0))
    return dict(sorted(found.items(), key=lambda kv: (kv[1].order, kv[0])))


def get(name: str) -> StackData:
    stacks = load()
    if name not in stacks:
        raise SystemExit(f"vmparity: no stack {name!r}; stacks/ describes {', '.join(stacks) or 'none'}")
    return stacks[name]


def this_machine() -> str | None:
    try:
        return THIS_MACHINE.read_text().strip() or None
    except OSError:
        return None


def local_stacks() -> list[str]:
    """What `--stack all` runs here: the stacks whose daemon this machine reaches itself (a kind-vm stack is
    another machine, run with `vmparity remote`), or, on a stack's own machine, that stack."""
    mine = this_machine()
    if mine is not None:
        return [mine]
    return [n for n, s in load().items() if s.kind != VM]


def host_stack() -> StackData:
    """The stack that is the host's own daemon (the default for a run)."""
    mine = this_machine()
    if mine is not None:
        return get(mine)
    for s in load().values():
        if s.kind == HOST:
            return s
    raise SystemExit(f"vmparity: no stack in {paths.STACKS} describes the host's own dockerd (kind: host)")
