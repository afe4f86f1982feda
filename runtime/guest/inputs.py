"""What the guest artifacts are built from, and the cache keys derived from it.

Two keys, so that agent development only rebuilds the cheap part:
- base: kernel package version + recipe (packages, modules) + the code that builds kernel, modules and image;
- initrd: base key + /init + the guest's Python (runtime.agent, runtime.wire) + pyroute2's version + busybox
  + the initramfs code.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from runtime.guest import cache
from runtime.guest.kernel import KernelPackage

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
RECIPE = HERE / "recipe"
PACKAGES = RECIPE / "packages.txt"
MODULES = RECIPE / "modules.txt"
INIT = RECIPE / "init"
AGENT_SRC = REPO / "runtime" / "agent"
GUEST_PACKAGES = ("runtime/agent", "runtime/wire")
"""What the guest image carries, under the same import names as on the host (the agent imports itself as
runtime.agent and the wire as runtime.wire), with runtime/__init__.py to make runtime a package there too."""
VENV = REPO / ".venv"
BASE_CODE = ("kernel.py", "modules.py", "osimage.py")
INITRD_CODE = ("initramfs.py", "cpio.py")
FORMAT = "vmparity-guest-1"  # bump to invalidate every cache entry


@dataclass(frozen=True)
class Pyroute2:
    path: Path  # the package directory
    version: str


def base_key(pkg: KernelPackage) -> str:
    code = [HERE / f for f in BASE_CODE]
    return cache.digest([FORMAT, "base", pkg.name, pkg.version, PACKAGES, MODULES, *code])


def agent_sources(src: Path | None = None) -> dict[str, bytes]:
    """The guest's Python by its path in the guest's import root (runtime/agent/server.py, runtime/wire/...,
    runtime/__init__.py); empty while the agent does not exist yet. With src: that directory's *.py files,
    relative to it."""
    if src is not None:
        return _python_files(src)
    if not _python_files(AGENT_SRC):
        return {}
    found = {"runtime/__init__.py": (REPO / "runtime" / "__init__.py").read_bytes()}
    for pkg in GUEST_PACKAGES:
        found.update({f"{pkg}/{rel}": data for rel, data in _python_files(REPO / pkg).items()})
    return found


def _python_files(src: Path) -> dict[str, bytes]:
    if not src.is_dir():
        return {}
    files = sorted(p for p in src.rglob("*.py") if "__pycache__" not in p.parts and p.is_file())
    return {p.relative_to(src).as_posix(): p.read_bytes() for p in files}


def initrd_key(base: str, agent: dict[str, bytes], pyroute2_version: str, busybox: Path) -> str:
    agent_parts: list[bytes | str | Path] = []
    for rel, data in sorted(agent.items()):
        agent_parts += [f"agent {rel}", data]
    code = [HERE / f for f in INITRD_CODE]
    parts = [FORMAT, "initrd", base, INIT, *code, f"pyroute2 {pyroute2_version}", busybox, *agent_parts]
    return cache.digest(parts)


_FIND = (
    "import importlib.metadata as m, importlib.util as u, json, os; "
    "s = u.find_spec('pyroute2'); "
    "print(json.dumps([os.path.dirname(s.origin), m.version('pyroute2')]) if s else 'null')"
)


def pyroute2() -> Pyroute2:
    """The project venv's pyroute2, which the agent uses and which is copied into the guest.

    Looked up without importing it (import is slow); in-process when this is the venv's interpreter.
    """
    here = Path(sys.prefix).resolve() == VENV.resolve() or not (VENV / "bin/python").exists()
    if here:
        out = _find_here()
    else:
        r = subprocess.run([str(VENV / "bin/python"), "-c", _FIND], capture_output=True, text=True, check=False)
        out = json.loads(r.stdout) if r.returncode == 0 else None
    if not out:
        raise RuntimeError(f"pyroute2 is not installed in {VENV}: run scripts/setup-host")
    return Pyroute2(Path(out[0]), out[1])


def _find_here() -> list[str] | None:
    spec = importlib.util.find_spec("pyroute2")
    if spec is None or spec.origin is None:
        return None
    package = Path(spec.origin).parent
    # every create computes this key: the dist-info directory's name spares importing importlib.metadata (~25 ms)
    infos = sorted(package.parent.glob("pyroute2-*.dist-info"))
    if len(infos) == 1:
        return [str(package), infos[0].name[len("pyroute2-"):-len(".dist-info")]]
    from importlib import metadata

    return [str(package), metadata.version("pyroute2")]
