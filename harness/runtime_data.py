"""The runtimes the suite can put in the matrix, described as data in runtimes/*.yaml.

The suite names no runtime in its code: how dockerd registers one, what the host set-up installs and prepares
for it, what counts as its leftovers and how fast it is all come from its file. Adding a runtime (Kata, youki, a
vendor's) is adding a file. A variant is the same runtime registered again with extra arguments.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from harness import paths, schema


@dataclass(frozen=True)
class RuntimeData:
    name: str
    description: str
    order: int = 100
    link: str | None = None
    packages: tuple[str, ...] = ()
    path: str | None = None
    """The executable dockerd is given; None when dockerd knows the runtime itself."""
    args: tuple[str, ...] = ()
    prepare: tuple[tuple[str, ...], ...] = ()
    leftovers: tuple[str, ...] = ()
    transient_devices: tuple[str, ...] = ()
    transient_mounts: tuple[str, ...] = ()
    slow: bool = False
    opt_in: bool = False
    parent: str | None = None
    """For a variant: the runtime whose expectations it shares."""
    variants: tuple[str, ...] = field(default=())

    def expand(self, template: tuple[str, ...], **extra: str) -> list[str]:
        """A command from the file, with {venv}, {repo}, {path} and any extra placeholders filled in."""
        where = {"venv": str(paths.VENV), "repo": str(paths.REPO)}
        values = {**where, "path": (self.path or self.name).format(**where), **extra}
        return [part.format(**values) for part in template]

    @property
    def registration(self) -> dict[str, Any] | None:
        """Its daemon.json entry, or None when dockerd needs none or the executable is not installed."""
        if self.path is None:
            return None
        exe = self.expand((self.path,))[0]
        if not Path(exe).exists():
            return None
        entry: dict[str, Any] = {"path": exe}
        if self.args:
            entry["runtimeArgs"] = list(self.args)
        return entry


def _from_file(raw: dict[str, Any]) -> list[RuntimeData]:
    register = raw.get("register")
    path = register.get("path") if isinstance(register, dict) else None
    args = tuple(register.get("args") or ()) if isinstance(register, dict) else ()
    base = RuntimeData(
        name=raw["name"], description=raw["description"], order=raw.get("order", 100), link=raw.get("link"),
        packages=tuple(raw.get("packages") or ()), path=path, args=args,
        prepare=tuple(tuple(c) for c in raw.get("prepare") or ()), leftovers=tuple(raw.get("leftovers") or ()),
        transient_devices=tuple(raw.get("transient_devices") or ()),
        transient_mounts=tuple(raw.get("transient_mounts") or ()), slow=bool(raw.get("slow")),
        opt_in=bool(raw.get("opt_in")), variants=tuple(raw.get("variants") or ()))
    out = [base]
    for i, (name, v) in enumerate((raw.get("variants") or {}).items(), start=1):
        out.append(RuntimeData(
            name=name, description=v["description"], order=base.order + i, link=base.link, path=path,
            args=(*args, *v["args"]), leftovers=base.leftovers, transient_devices=base.transient_devices,
            transient_mounts=base.transient_mounts, slow=base.slow, opt_in=bool(v.get("opt_in")), parent=base.name))
    return out


@cache
def load(directory: Path = paths.RUNTIMES) -> dict[str, RuntimeData]:
    """Every runtime and variant by name, in column order. A bad file is an error naming the file."""
    found: dict[str, RuntimeData] = {}
    for f in sorted(directory.glob("*.yaml")):
        raw = yaml.safe_load(f.read_text())
        try:
            schema.validate("runtime", raw)
        except schema.SchemaError as e:
            raise schema.SchemaError(f"{f}: {e}") from None
        if raw["name"] != f.stem:
            raise schema.SchemaError(f"{f}: names runtime {raw['name']!r}; the file must be {raw['name']}.yaml")
        for r in _from_file(raw):
            if r.name in found:
                raise schema.SchemaError(f"{f}: runtime {r.name!r} is already described")
            found[r.name] = r
    return dict(sorted(found.items(), key=lambda kv: (kv[1].order, kv[0])))


def get(name: str) -> RuntimeData | None:
    return load().get(name)


def slow() -> tuple[str, ...]:
    return tuple(n for n, r in load().items() if r.slow)


def opt_in() -> frozenset[str]:
    return frozenset(n for n, r in load().items() if r.opt_in)


def expect_like(name: str) -> str | None:
    r = get(name)
    return r.parent if r else None


def transient_devices() -> tuple[str, ...]:
    return tuple(d for r in load().values() for d in r.transient_devices)


def transient_mounts() -> tuple[str, ...]:
    return tuple(m for r in load().values() for m in r.transient_mounts)
