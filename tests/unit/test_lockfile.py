"""Removable lock files: a held lock stays, a free one goes, and a taker that locked a file which was removed
meanwhile moves on to the file now at the path, so two takers never hold the lock at once."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from runtime.runvm import lockfile


def test_a_held_lock_is_not_removed_and_a_free_one_is(tmp_path: Path) -> None:
    path = tmp_path / ".k.lock"
    fd = lockfile.take(path)
    assert fd is not None
    assert lockfile.take(path, blocking=False) is None
    assert not lockfile.remove_if_free(path) and path.exists()
    os.close(fd)
    assert lockfile.remove_if_free(path) and not path.exists()
    assert not lockfile.remove_if_free(path)  # already gone: nothing to do, no error


def test_a_taker_whose_file_was_removed_while_it_waited_takes_the_new_one(tmp_path: Path) -> None:
    path = tmp_path / ".k.lock"
    holder = lockfile.take(path)
    assert holder is not None
    old_ino = os.fstat(holder).st_ino
    got: list[int | None] = []
    waiter = threading.Thread(target=lambda: got.append(lockfile.take(path)))
    waiter.start()  # opens the old file and waits in flock
    threading.Event().wait(0.2)
    path.unlink()  # as remove_if_free would once the holder is done; a new taker makes a new file
    second = lockfile.take(path, blocking=False)
    assert second is not None and os.fstat(second).st_ino != old_ino
    os.close(holder)  # the waiter now gets the old (unlinked) file, notices, and queues for the new one
    threading.Event().wait(0.2)
    assert got == []
    os.close(second)
    waiter.join(5)
    fd = got[0]
    assert fd is not None and os.fstat(fd).st_ino == os.stat(path).st_ino
    try:
        assert lockfile.take(path, blocking=False) is None  # held by the waiter, at the path
    finally:
        os.close(fd)
