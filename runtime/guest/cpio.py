"""A writer for the initramfs's cpio archive ("newc" format), without needing root or the cpio tool.

Writing it here lets the archive hold /dev/console (the kernel opens it for /init's output before
anything is mounted) and makes it reproducible: sorted names, owner root, timestamps zero.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

TRAILER = "TRAILER!!!"


@dataclass(frozen=True)
class Node:
    """An archive member that does not come from the file system, e.g. a device node."""

    mode: int
    rdev_major: int = 0
    rdev_minor: int = 0


def _pad(n: int) -> bytes:
    return b"\0" * (-n % 4)


def _member(out: BinaryIO, ino: int, name: str, mode: int, data: bytes = b"", rmaj: int = 0, rmin: int = 0) -> None:
    nlink = 2 if stat.S_ISDIR(mode) else 1
    encoded = name.encode() + b"\0"
    fields = (ino, mode, 0, 0, nlink, 0, len(data), 0, 0, rmaj, rmin, len(encoded), 0)
    header = b"070701" + b"".join(b"%08X" % f for f in fields)
    out.write(header + encoded + _pad(len(header) + len(encoded)))
    out.write(data + _pad(len(data)))


def write(out: BinaryIO, tree: Path, extra: dict[str, Node] | None = None) -> int:
    """Archive every file, directory and symlink under tree (plus `extra` nodes); returns the member count.

    Parents sort before their children, which the kernel's unpacker needs.
    """
    members: dict[str, tuple[int, bytes, int, int]] = {}
    for dirpath, dirnames, filenames in os.walk(tree):
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            rel = path.relative_to(tree).as_posix()
            st = path.lstat()
            perm = stat.S_IMODE(st.st_mode)
            if stat.S_ISLNK(st.st_mode):
                members[rel] = (stat.S_IFLNK | 0o777, os.readlink(path).encode(), 0, 0)
            elif stat.S_ISDIR(st.st_mode):
                members[rel] = (stat.S_IFDIR | perm, b"", 0, 0)
            elif stat.S_ISREG(st.st_mode):
                members[rel] = (stat.S_IFREG | perm, path.read_bytes(), 0, 0)
            else:
                raise ValueError(f"cannot archive {path}: not a file, directory or symlink")
    for rel, node in (extra or {}).items():
        members[rel] = (node.mode, b"", node.rdev_major, node.rdev_minor)
    ino = 0
    for ino, rel in enumerate(sorted(members), start=1):
        mode, data, rmaj, rmin = members[rel]
        _member(out, ino, rel, mode, data, rmaj, rmin)
    _member(out, 0, TRAILER, 0)
    return ino
