"""The one directory QEMU exports over 9p: the container's rootfs and every bind-mount source, bound into it
inside the vm-shim's private mount namespace (so they vanish with the shim, even after kill -9)."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

from runtime.runvm.errors import RunvmError
from runtime.runvm.sys import MS_BIND, MS_REC, attach_tree, clone_tree, mount

BIND_OPTIONS = {"bind", "rbind"}


def is_bind(m: dict[str, Any]) -> bool:
    return m.get("type") == "bind" or bool(BIND_OPTIONS & set(m.get("options") or []))


def prepare(share: Path) -> None:
    (share / "rootfs").mkdir(parents=True, exist_ok=True)
    (share / "m").mkdir(exist_ok=True)


def sources(rootfs: Path, mounts: list[dict[str, Any]]) -> list[tuple[str, bool]]:
    """(path, recursive) of what goes into the share, rootfs first; a missing bind source is an error here."""
    found = [(str(rootfs), True)]
    for m in mounts:
        if not is_bind(m):
            continue
        source = m.get("source") or ""
        if not os.path.exists(source):
            raise RunvmError(f"mount source path {source!r} for {m['destination']} does not exist")
        found.append((source, "rbind" in (m.get("options") or [])))
    return found


def clone_sources(rootfs: Path, mounts: list[dict[str, Any]]) -> list[int]:
    """Detached copies of every source, taken in the mount namespace the container's daemon sees, for
    populate(..., trees=) after the caller has moved to the VM's namespace. The caller closes them."""
    fds: list[int] = []
    try:
        for source, recursive in sources(rootfs, mounts):
            fds.append(clone_tree(source, recursive))
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise
    return fds


def populate(share: Path, rootfs: Path, mounts: list[dict[str, Any]],
             trees: list[int] | None = None) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """Bind the rootfs and bind sources into the share (or attach the trees clone_sources took, in the same
    order); return the mounts rewritten for the guest and the map from share keys to their path in the share."""
    if trees is None:
        sources(rootfs, mounts)  # every bind source exists, before anything is mounted

    def attach(k: int, source: str, target: Path, recursive: bool) -> None:
        if trees is not None:
            attach_tree(trees[k], str(target))
        else:
            mount(source, str(target), None, MS_BIND | (MS_REC if recursive else 0))

    attach(0, str(rootfs), share / "rootfs", True)
    rewritten, keys = [], {}
    k = 1
    for i, m in enumerate(mounts):
        if not is_bind(m):
            rewritten.append(m)
            continue
        source = m.get("source") or ""
        target = share / "m" / str(i)
        is_dir = os.path.isdir(source) if trees is None else stat.S_ISDIR(os.fstat(trees[k]).st_mode)
        if is_dir:
            target.mkdir(exist_ok=True)
        else:
            target.touch(exist_ok=True)
        attach(k, source, target, "rbind" in (m.get("options") or []))
        k += 1
        key = f"share:{i}"
        keys[key] = f"m/{i}"
        rewritten.append({**m, "source": key, "host_source": source})
    return rewritten, keys
