"""Removable lock files: a held lock stays, a free one goes, and a taker that locked a file which was removed
meanwhile moves on to the file now at the path, so two takers never hold the lock at once."""

from __future__ import annotations

import fcntl
import os
import threading
import time
from pathlib import Path

import pytest

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


def test_a_taker_whose_file_was_removed_while_it_waited_takes_the_new_one(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / ".k.lock"
    holder = lockfile.take(path)
    assert holder is not None
    old_ino = os.fstat(holder).st_ino
    waiting_on: list[int] = []
    in_flock = threading.Event()
    real_flock = fcntl.flock

    def flock(fd: int, op: int) -> None:
        if threading.current_thread() is waiter:
            waiting_on.append(os.fstat(fd).st_ino)
            in_flock.set()
        real_flock(fd, op)

    monkeypatch.setattr(lockfile.fcntl, "flock", flock)
    got: list[int | None] = []
    waiter = threading.Thread(target=lambda: got.append(lockfile.take(path)))
    waiter.start()
    assert in_flock.wait(5) and waiting_on == [old_ino]  # it has the old file open and waits for its lock
    path.unlink()  # as remove_if_free would once the holder is done; a new taker makes a new file
    second = lockfile.take(path, blocking=False)
    assert second is not None and os.fstat(second).st_ino != old_ino
    os.close(holder)  # the waiter gets the old (unlinked) file, notices, and queues for the new one
    deadline = time.monotonic() + 5
    while len(waiting_on) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert waiting_on == [old_ino, os.fstat(second).st_ino] and got == []  # not inside while second holds it
    os.close(second)
    waiter.join(5)
    fd = got[0]
    assert fd is not None and os.fstat(fd).st_ino == os.stat(path).st_ino
    try:
        assert lockfile.take(path, blocking=False) is None  # held by the waiter, at the path
    finally:
        os.close(fd)
