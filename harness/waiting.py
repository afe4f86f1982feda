"""The one way the suite waits: every wait says whether what it waited for happened, and when.

A poll that returns its last value silently on timeout lets a runtime under which an effect never happens look
like runc when the oracle then reads the same "nothing" on both sides. Oracles put `reached` (or the state the
poll got to) into the observation and the measured wait into ctx.notes; the harness's own waits either settle
(take whatever the last probe saw once the time is up, and say so) or `wait_for`, whose error names what it
waited for.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Polled(Generic[T]):
    value: T
    """The last value probed (the one that satisfied the condition, when reached)."""
    reached: bool
    """Whether the condition held before the time was up."""
    waited_s: float
    """Seconds from the first probe to the last."""
    probes: int

    @property
    def timed_out(self) -> bool:
        return not self.reached

    def note(self) -> dict[str, float | int | bool]:
        """Evidence for ctx.notes: how long it took, how many probes, whether it got there."""
        return {"reached": self.reached, "waited_s": round(self.waited_s, 2), "probes": self.probes}


def poll(probe: Callable[[], T], until: Callable[[T], bool], timeout: float, interval: float = 0.1,
         *, clock: Callable[[], float] = time.monotonic,
         sleep: Callable[[float], None] = time.sleep) -> Polled[T]:
    """Call probe until its value satisfies `until` or `timeout` seconds are up (probing at least once)."""
    start = clock()
    deadline = start + timeout
    value = probe()
    probes = 1
    while not until(value):
        if clock() >= deadline:
            return Polled(value, False, clock() - start, probes)
        sleep(interval)
        value = probe()
        probes += 1
    return Polled(value, True, clock() - start, probes)


class WaitTimedOut(TimeoutError):
    """What a wait waited for did not happen in time; the message names it and the last thing seen."""


def wait_for(probe: Callable[[], T], what: str, timeout: float, interval: float = 0.1,
             until: Callable[[T], bool] = bool) -> T:
    """The probe's first value satisfying `until` (truthy by default), or WaitTimedOut naming `what`."""
    polled = poll(probe, until, timeout, interval)
    if not polled.reached:
        raise WaitTimedOut(f"{what}: not within {timeout:g}s ({polled.probes} probes; last: {polled.value!r:.200})")
    return polled.value


def when(waited_s: float, immediately_s: float = 0.5) -> str:
    """A measured delay by meaning: "immediately" (within what one probe takes) or "later"."""
    return "immediately" if waited_s <= immediately_s else "later"
