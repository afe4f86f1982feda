"""wait.py: the one way runvm waits, and a timeout that names what it waited for."""

from __future__ import annotations

import asyncio
import time

import pytest

from runtime.runvm import wait
from runtime.runvm.errors import RunvmError


def test_poll_returns_the_first_truthy_value() -> None:
    calls = iter([0, None, "", 5, 6])
    assert wait.poll(lambda: next(calls), timeout=1, interval=0.001) == 5


def test_poll_gives_up_quietly_and_asks_at_least_once() -> None:
    asked = []
    started = time.monotonic()
    assert wait.poll(lambda: asked.append(1), timeout=0.05, interval=0.01) is None
    assert asked and time.monotonic() - started < 0.5


def test_poll_with_no_time_asks_once() -> None:
    asked = []
    assert wait.poll(lambda: asked.append(1) or True, timeout=0) is True
    assert asked == [1]


def test_until_names_what_it_waited_for() -> None:
    with pytest.raises(wait.WaitTimeout) as e:
        wait.until(lambda: False, "the spare VM to be ready", timeout=0.05)
    assert "the spare VM to be ready" in str(e.value) and "0.05s" in str(e.value)
    assert isinstance(e.value, RunvmError)  # a command's failure message, as Docker shows it


def test_deadline_counts_down() -> None:
    d = wait.Deadline(10, "x")
    assert 9 < d.left() <= 10 and not d.expired()
    assert wait.Deadline(0, "x").expired() and wait.Deadline(0, "x").left() == 0.0
    assert "waiting for the agent" in str(wait.Deadline(1, "the agent").error())


def test_until_async_retries_then_succeeds() -> None:
    tries = []

    async def attempt(left: float) -> str:
        tries.append(left)
        if len(tries) < 3:
            raise OSError("not yet")
        return "up"

    assert asyncio.run(wait.until_async(attempt, "it", 5, interval=0.001)) == "up"
    assert len(tries) == 3 and all(0 < t <= 5 for t in tries)


def test_until_async_timeout_carries_the_last_error() -> None:
    async def attempt(left: float) -> None:
        raise ConnectionRefusedError("refused")

    with pytest.raises(wait.WaitTimeout, match=r"the guest agent to answer.*refused"):
        asyncio.run(wait.until_async(attempt, "the guest agent to answer", 0.05, interval=0.01))


def test_until_async_check_ends_the_wait_at_once() -> None:
    async def attempt(left: float) -> None:
        raise OSError("never")

    def check() -> None:
        raise RunvmError("QEMU exited with 1")

    started = time.monotonic()
    with pytest.raises(RunvmError, match="QEMU exited"):
        asyncio.run(wait.until_async(attempt, "x", 10, check=check))
    assert time.monotonic() - started < 1
