"""The scenario timeout: one oracle execution gets `seconds`, then it is interrupted where it waits.

A hung runtime blocks the oracle in a socket read (the Docker SDK) or a child wait (the CLI). SIGALRM interrupts
either in the main thread, and the exception it raises unwinds the oracle, so the cell is
reported and its objects are cleaned up. pytest runs tests in the main thread; elsewhere no timer is armed.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType

REPEAT_S = 5.0
"""After the first expiry the alarm repeats, in case an oracle's broad `except` swallowed it."""


class ScenarioTimeout(BaseException):
    """The whole oracle overran the scenario's timeout. A BaseException, so `except Exception` in an oracle
    cannot swallow it."""


@contextlib.contextmanager
def limit(seconds: float, what: str) -> Iterator[None]:
    if seconds <= 0 or threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(_sig: int, _frame: FrameType | None) -> None:
        raise ScenarioTimeout(f"{what}: did not finish within the scenario timeout of {seconds:g}s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds, REPEAT_S)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
