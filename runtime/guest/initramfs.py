"""The initramfs: busybox, the guest's kernel modules, /init, and the agent (runtime.agent, runtime.wire) with
its one dependency, all under /agent, the guest's import root (PYTHONPATH=/run/agent once /init copied it).

It is the part that changes while the agent is developed, so it is built on its own, in seconds, from a
cached base. It stays uncompressed: under TCG, decompressing costs more than copying the bytes.
"""

from __future__ import annotations

import compileall
import py_compile
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

from runtime.guest import cpio
from runtime.guest.commands import run

BUSYBOX = Path("/bin/busybox")
SKELETON = ("bin", "sbin", "usr/bin", "usr/sbin", "dev", "proc", "sys", "run", "tmp", "newroot", "agent")
DEVICES = {
    "dev/console": cpio.Node(stat.S_IFCHR | 0o600, 5, 1),
    "dev/null": cpio.Node(stat.S_IFCHR | 0o666, 1, 3),
}


def package_files(pkg: Path) -> list[Path]:
    """Everything a pure-Python package needs at run time (sources and data, no caches)."""
    return sorted(
        p for p in pkg.rglob("*") if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    )


def _copy(files: Iterable[Path], src: Path, dest: Path) -> None:
    for f in files:
        target = dest / f.relative_to(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(f, target)
        target.chmod(0o644)


def _install_busybox(root: Path) -> int:
    (root / "bin/busybox").write_bytes(BUSYBOX.read_bytes())
    (root / "bin/busybox").chmod(0o755)
    applets = run([str(BUSYBOX), "--list-full"]).split()
    for applet in applets:
        link = root / applet
        if link.name in ("busybox", "init", "linuxrc") or link.exists() or link.is_symlink():
            continue
        link.parent.mkdir(parents=True, exist_ok=True)
        depth = len(Path(applet).parts) - 1
        link.symlink_to("../" * depth + "bin/busybox")
    return len(applets)


def _precompile(agent_root: Path, guest_python: str) -> bool:
    """Compile the agent's Python ahead of time when the host's Python has the guest's bytecode format.

    The guest's root is read-only and the agent runs with -B, so without this every boot would compile
    pyroute2 from source under TCG. Unchecked-hash .pyc files stay valid whatever the timestamps.
    """
    if f"{sys.version_info.major}.{sys.version_info.minor}" != guest_python:
        return False
    ok = compileall.compile_dir(
        agent_root,
        quiet=1,
        workers=1,
        stripdir=str(agent_root),
        prependdir="/run/agent",
        invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
    )
    if not ok:
        raise RuntimeError(f"byte-compiling the agent or pyroute2 failed (under {agent_root})")
    return True


def assemble(
    root: Path,
    *,
    modules_tree: Path,
    init_script: Path,
    agent: dict[str, bytes],
    pyroute2_pkg: Path,
    guest_python: str,
) -> dict[str, object]:
    """Lay out the initramfs tree in root (an empty directory); returns facts for the build record.
    agent maps paths under the import root (runtime/agent/server.py) to their contents."""
    for d in SKELETON:
        (root / d).mkdir(parents=True, exist_ok=True)
    applets = _install_busybox(root)
    shutil.copytree(modules_tree, root, dirs_exist_ok=True, symlinks=True)
    shutil.copyfile(init_script, root / "init")
    (root / "init").chmod(0o755)
    for rel, data in agent.items():
        target = root / "agent" / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    _copy(package_files(pyroute2_pkg), pyroute2_pkg, root / "agent/pyroute2")
    compiled = _precompile(root / "agent", guest_python)
    return {"busybox_applets": applets, "agent_files": len(agent), "precompiled": compiled}


def archive(root: Path, out: Path) -> int:
    """Write root as an uncompressed newc cpio; returns the member count."""
    with open(out, "wb") as f:
        return cpio.write(f, root, DEVICES)


def check_busybox() -> None:
    """busybox-static must be a static binary: the initramfs has no libc."""
    if not BUSYBOX.exists():
        raise RuntimeError(f"{BUSYBOX} is missing: install busybox-static (scripts/setup-host does)")
    r = subprocess.run(["ldd", str(BUSYBOX)], capture_output=True, text=True, check=False)
    if "not a dynamic executable" not in (r.stdout + r.stderr) and "statically linked" not in r.stdout:
        raise RuntimeError(f"{BUSYBOX} is dynamically linked: install busybox-static instead of busybox")
