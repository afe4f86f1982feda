"""The one directory QEMU exports over 9p: the container's rootfs and every bind-mount source, bound into it
inside the vm-shim's private mount namespace (so they vanish with the shim, even after kill -9)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from runtime.runvm.errors import RunvmError
from runtime.runvm.sys import MS_BIND, MS_REC, mount

BIND_OPTIONS = {"bind", "rbind"}


def is_bind(m: dict[str, Any]) -> bool:
    return m.get("type") == "bind" or bool(BIND_OPTIONS & set(m.get("options") or []))


def prepare(share: Path) -> None:
    (share / "rootfs").mkdir(parents=True, exist_ok=True)
    (share / "m").mkdir(exist_ok=True)


def populate(share: Path, rootfs: Path, mounts: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """Bind the rootfs and bind sources into the share; return the mounts rewritten for the guest and the map
    from share keys to their path inside the share."""
    mount(str(rootfs), str(share / "rootfs"), None, MS_BIND | MS_REC)
    rewritten, keys = [], {}
    for i, m in enumerate(mounts):
        if not is_bind(m):
            rewritten.append(m)
            continue
        source = m.get("source") or ""
        if not os.path.exists(source):
            raise RunvmError(f"mount source path {source!r} for {m['destination']} does not exist")
        target = share / "m" / str(i)
        if os.path.isdir(source):
            target.mkdir(exist_ok=True)
        else:
            target.touch(exist_ok=True)
        recursive = "rbind" in (m.get("options") or [])
        mount(source, str(target), None, MS_BIND | (MS_REC if recursive else 0))
        key = f"share:{i}"
        keys[key] = f"m/{i}"
        rewritten.append({**m, "source": key, "host_source": source})
    return rewritten, keys
