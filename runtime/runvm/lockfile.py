"""Lock files that can be removed safely. A lock file is removed only when no one holds it, and a taker checks,
once it holds the lock, that the file it locked is still the one at the path; otherwise a remover could unlink
the file between the taker's open and flock, and a second taker would lock a new file at the same time."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

TYPE_CHECKING = False  # typing is not imported on runvm's light commands
if TYPE_CHECKING:
    from collections.abc import Callable


def take(path: Path, blocking: bool = True) -> int | None:
    """Hold the lock at path; returns the fd to close to release it, or None if not blocking and held."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if blocking else fcntl.LOCK_EX | fcntl.LOCK_NB)
            if _at_path(fd, path):
                return fd
        except BlockingIOError:
            os.close(fd)
            return None
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)  # removed while we waited for it: take the file that is there now


def remove_if_free(path: Path) -> bool:
    """Unlink the lock file if no one holds it (tested without waiting)."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        if not _at_path(fd, path):
            return False
        path.unlink()
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def remove_unused(root: Path, in_use: Callable[[str], bool]) -> None:
    """Remove root's free lock files `.<key>.lock` whose key is no longer in use."""
    for lock in root.glob(".*.lock"):
        if not in_use(lock.name[1:-len(".lock")]):
            remove_if_free(lock)


def _at_path(fd: int, path: Path) -> bool:
    """The file fd is open on is still the one at path."""
    try:
        return os.stat(path).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
        return False
