"""The retry around containerd's stale checkpoint blob: only that refusal is retried, and not forever."""

from __future__ import annotations

from subprocess import CompletedProcess

from harness.checkpoint_upload import is_stale_blob, start_from_checkpoint

STALE = ("Error response from daemon: failed to upload checkpoint to containerd: commit failed: "
         "content sha256:603c4c36: already exists\n")


def proc(rc: int, err: str | bytes) -> CompletedProcess[str | bytes]:
    return CompletedProcess(["docker"], rc, "", err)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def sleep(self, s: float) -> None:
        self.slept.append(s)
        self.now += s


def test_stale_blob_is_recognised_in_text_and_bytes() -> None:
    assert is_stale_blob(proc(1, STALE))
    assert is_stale_blob(proc(1, STALE.encode()))
    assert not is_stale_blob(proc(0, STALE))
    assert not is_stale_blob(proc(1, "Error response from daemon: container is already running"))


def test_retried_until_the_blob_is_collected() -> None:
    answers = [proc(1, STALE), proc(1, STALE), proc(0, "")]
    clock = Clock()
    result, retried = start_from_checkpoint(lambda: answers.pop(0), sleep=clock.sleep, clock=lambda: clock.now)
    assert (result.returncode, retried, clock.slept) == (0, 2, [0.5, 1.0])


def test_other_errors_are_returned_at_once() -> None:
    clock = Clock()
    other = proc(1, "Error response from daemon: runtime refused the restore")
    result, retried = start_from_checkpoint(lambda: other, sleep=clock.sleep, clock=lambda: clock.now)
    assert (result, retried, clock.slept) == (other, 0, [])


def test_gives_up_after_its_patience() -> None:
    clock = Clock()
    result, retried = start_from_checkpoint(lambda: proc(1, STALE), patience=12, sleep=clock.sleep,
                                            clock=lambda: clock.now)
    assert is_stale_blob(result)
    assert clock.now <= 12 and retried == len(clock.slept) == 4
