"""One way for runvm to wait for something: a deadline, a poll that gives up quietly, and a wait whose timeout
error names what it waited for (so a stuck create says what it was stuck on, not just "timed out").

Imported by the resident vm-shim and by every short command: only time, nothing of typing's."""

from __future__ import annotations

import time

from runtime.runvm.errors import RunvmError

TYPE_CHECKING = False  # not typing's: see statefile
if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from typing import TypeVar

    T = TypeVar("T")

INTERVAL_S = 0.02


class WaitTimeout(RunvmError):
    """A wait that ran out of time; its message says for what, and for how long."""

    def __init__(self, what: str, timeout: float, detail: str = "") -> None:
        self.what, self.timeout = what, timeout
        super().__init__(f"timed out after {timeout:g}s waiting for {what}" + (f" ({detail})" if detail else ""))


class Deadline:
    """A point in time that loops with their own blocking call (select, recv) count down to."""

    def __init__(self, timeout: float, what: str) -> None:
        self.timeout, self.what = timeout, what
        self.end = time.monotonic() + timeout

    def left(self) -> float:
        return max(0.0, self.end - time.monotonic())

    def expired(self) -> bool:
        return time.monotonic() >= self.end

    def error(self, detail: str = "") -> WaitTimeout:
        return WaitTimeout(self.what, self.timeout, detail)


def poll(cond: Callable[[], T], timeout: float, interval: float = INTERVAL_S) -> T | None:
    """cond()'s first truthy value, or None once timeout has passed (cond is asked at least once, and once more
    at the deadline). For best-effort waits whose caller carries on either way."""
    end = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        left = end - time.monotonic()
        if left <= 0:
            return None
        time.sleep(min(interval, left))


def until(cond: Callable[[], T], what: str, timeout: float, interval: float = INTERVAL_S) -> T:
    """cond()'s first truthy value; WaitTimeout naming `what` if there is none within timeout."""
    value = poll(cond, timeout, interval)
    if not value:
        raise WaitTimeout(what, timeout)
    return value


async def until_async(attempt: Callable[[float], Awaitable[T]], what: str, timeout: float,
                      retry_on: tuple[type[BaseException], ...] = (OSError, RunvmError),
                      check: Callable[[], None] | None = None, interval: float = 0.05) -> T:
    """Retry attempt(seconds left) until it returns; errors in retry_on mean "not yet". check(), called before
    every attempt, ends the wait by raising (the process being waited on has died, say)."""
    import asyncio  # only here: the short commands and the resident shim never load it

    end = time.monotonic() + timeout
    while True:
        if check is not None:
            check()
        try:
            return await attempt(max(0.0, end - time.monotonic()))
        except retry_on as e:
            if time.monotonic() > end:
                raise WaitTimeout(what, timeout, str(e) or e.__class__.__name__) from None
        await asyncio.sleep(interval)
