"""Uniqueness after a restore from a template: fresh randomness and the host's clock.

Every VM cloned from one snapshot starts with the same kernel RNG state; the host sends random bytes that are
credited and followed by a forced reseed, so the clones diverge before any container process runs.
"""

from __future__ import annotations

import fcntl
import struct
import time

RNDADDENTROPY = 0x40085203
RNDRESEEDCRNG = 0x5207


def reseed(seed: bytes) -> None:
    with open("/dev/urandom", "wb") as f:
        fcntl.ioctl(f, RNDADDENTROPY, struct.pack("ii", len(seed) * 8, len(seed)) + seed)
        fcntl.ioctl(f, RNDRESEEDCRNG)


def set_clock(realtime_ns: int) -> None:
    time.clock_settime_ns(time.CLOCK_REALTIME, realtime_ns)
