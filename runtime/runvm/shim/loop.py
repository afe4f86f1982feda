"""A small event loop (selectors, timers, signals, pidfds) for the resident vm-shim: asyncio alone would cost
every idle container about 5 MB of host memory."""

from __future__ import annotations

import contextlib
import heapq
import itertools
import os
import selectors
import signal
import time
from collections import deque
from collections.abc import Callable

Callback = Callable[[], None]


def _bound(handler: Callable[[int], None], sig: int) -> Callback:
    """handler(sig) as a callback (functools.partial, without importing functools into the resident shim)."""
    return lambda: handler(sig)


class Loop:
    def __init__(self) -> None:
        self.sel = selectors.DefaultSelector()
        self.handlers: dict[int, list[Callback | None]] = {}
        self.timers: list[tuple[float, int, Callback]] = []
        self.cancelled: set[int] = set()
        self.soon: deque[Callback] = deque()
        self.seq = itertools.count()
        self.running = False
        self._signal_handlers: dict[int, Callable[[int], None]] = {}
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.add_reader(self._wake_r, self._drain_signals)

    # ---- fds -------------------------------------------------------------------------------------
    def _update(self, fd: int) -> None:
        read, write = self.handlers.get(fd, [None, None])
        mask = (selectors.EVENT_READ if read else 0) | (selectors.EVENT_WRITE if write else 0)
        registered = fd in self.sel.get_map()
        if not mask:
            if registered:
                self.sel.unregister(fd)
            self.handlers.pop(fd, None)
        elif registered:
            self.sel.modify(fd, mask)
        else:
            self.sel.register(fd, mask)

    def add_reader(self, fd: int, cb: Callback) -> None:
        self.handlers.setdefault(fd, [None, None])[0] = cb
        try:
            self._update(fd)
        except PermissionError:  # epoll refuses regular files and /dev/null
            self.handlers[fd][0] = None
            raise

    def remove_reader(self, fd: int) -> None:
        if fd in self.handlers:
            self.handlers[fd][0] = None
            self._update(fd)

    def add_writer(self, fd: int, cb: Callback) -> None:
        self.handlers.setdefault(fd, [None, None])[1] = cb
        self._update(fd)

    def remove_writer(self, fd: int) -> None:
        if fd in self.handlers:
            self.handlers[fd][1] = None
            self._update(fd)

    # ---- time ------------------------------------------------------------------------------------
    def call_soon(self, cb: Callback) -> None:
        self.soon.append(cb)

    def call_later(self, delay: float, cb: Callback) -> int:
        handle = next(self.seq)
        heapq.heappush(self.timers, (time.monotonic() + delay, handle, cb))
        return handle

    def cancel(self, handle: int | None) -> None:
        if handle is not None:
            self.cancelled.add(handle)

    # ---- signals ---------------------------------------------------------------------------------
    def add_signal_handler(self, sig: int, cb: Callable[[int], None]) -> None:
        self._signal_handlers[sig] = cb
        signal.signal(sig, lambda *_: None)
        signal.set_wakeup_fd(self._wake_w, warn_on_full_buffer=False)

    def _drain_signals(self) -> None:
        with contextlib.suppress(BlockingIOError):
            for sig in os.read(self._wake_r, 512):
                handler = self._signal_handlers.get(sig)
                if handler is not None:
                    self.call_soon(_bound(handler, sig))

    # ---- running ---------------------------------------------------------------------------------
    def stop(self) -> None:
        self.running = False

    def run(self) -> None:
        self.running = True
        while self.running:
            while self.soon:
                self.soon.popleft()()
                if not self.running:
                    return
            timeout: float | None = None
            if self.timers:
                timeout = max(0.0, self.timers[0][0] - time.monotonic())
            for key, mask in self.sel.select(timeout):
                read, write = self.handlers.get(key.fd, [None, None])
                if mask & selectors.EVENT_READ and read:
                    read()
                if mask & selectors.EVENT_WRITE and write and self.handlers.get(key.fd, [None, None])[1]:
                    write()
            now = time.monotonic()
            while self.timers and self.timers[0][0] <= now:
                _, handle, cb = heapq.heappop(self.timers)
                if handle in self.cancelled:
                    self.cancelled.discard(handle)
                else:
                    cb()
