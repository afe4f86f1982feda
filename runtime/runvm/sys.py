"""Host system calls Python 3.11 lacks (mount, unshare, setns, prctl), for the shim side."""

from __future__ import annotations

import ctypes
import os

_libc = ctypes.CDLL(None, use_errno=True)

CLONE_NEWNS = 0x00020000
CLONE_NEWNET = 0x40000000
MS_BIND = 4096
MS_REC = 16384
MS_SLAVE = 1 << 19
MS_PRIVATE = 1 << 18


def _check(ret: int, what: str) -> None:
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def mount(source: str, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    _check(_libc.mount(source.encode(), target.encode(), fstype.encode() if fstype else None,
                       ctypes.c_ulong(flags), data.encode() if data else None), f"mount {source} on {target}")


def umount(target: str, flags: int = 2) -> None:
    """MNT_DETACH by default."""
    _check(_libc.umount2(target.encode(), flags), f"umount {target}")


def unshare(flags: int) -> None:
    _check(_libc.unshare(flags), "unshare")


def setns(fd: int, nstype: int) -> None:
    _check(_libc.setns(fd, nstype), "setns")


def private_mount_namespace() -> None:
    """A mount namespace of our own that still receives the host's mounts (rslave), never sends any back."""
    unshare(CLONE_NEWNS)
    mount("none", "/", None, MS_REC | MS_SLAVE)

SYS_OPEN_TREE = 428
SYS_MOVE_MOUNT = 429
OPEN_TREE_CLONE = 1
AT_RECURSIVE = 0x8000
MOVE_MOUNT_F_EMPTY_PATH = 0x4
_libc.syscall.restype = ctypes.c_long


def clone_tree(source: str, recursive: bool) -> int:
    """open_tree(OPEN_TREE_CLONE): a detached copy of the mount at source, as an fd. Unlike a bind mount it can
    be attached in another mount namespace (move_mount_fd), which is how a pooled VM's share gets the rootfs
    the container's daemon sees."""
    fd = _libc.syscall(SYS_OPEN_TREE, -100, source.encode(),
                       ctypes.c_uint(OPEN_TREE_CLONE | os.O_CLOEXEC | (AT_RECURSIVE if recursive else 0)))
    _check(fd, f"open_tree {source}")
    return int(fd)


def attach_tree(fd: int, target: str) -> None:
    """move_mount(2) of a tree from clone_tree onto target, in the current mount namespace."""
    _check(_libc.syscall(SYS_MOVE_MOUNT, fd, b"", -100, target.encode(), ctypes.c_uint(MOVE_MOUNT_F_EMPTY_PATH)),
           f"move_mount onto {target}")
