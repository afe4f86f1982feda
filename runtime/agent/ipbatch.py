"""A resident `ip -force -batch -` that the agent feeds commands through its stdin.

Under emulation, starting iproute2 (exec, the dynamic loader, its libraries) costs about 160 ms of the ~190 ms a
NIC's configuration takes, on every container's critical path. Started before the template snapshot, the process
is already there in every VM restored from it, its netlink socket open.

Each batch ends with a sentinel that always fails, harmlessly and at once: deleting 0.0.0.0/32 from lo (a device
that is always there; naming a missing one would make the kernel try to load a module for it, which costs a
usermode-helper start per batch). With -force, iproute2 reports every failed line on stderr, unbuffered, as
"Command failed -:N", N counting the lines it has read: the sentinel's N marks the end of the batch, and the
errors of lower N are the batch's own.
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import signal
import time

IP = "/usr/sbin/ip" if os.path.exists("/usr/sbin/ip") else "/sbin/ip"
SENTINEL = "addr del 0.0.0.0/32 dev lo"
FAILED = re.compile(r"Command failed -:(\d+)")


class IpBatch:
    def __init__(self, ip: str = IP) -> None:
        self.ip = ip
        self.pid = 0
        self.pidfd = -1
        self.stdin = -1
        self.stderr = -1
        self.lines = 0
        self.buffered = b""

    def start(self) -> None:
        in_r, in_w = os.pipe()
        err_r, err_w = os.pipe()
        actions = [(os.POSIX_SPAWN_DUP2, in_r, 0), (os.POSIX_SPAWN_DUP2, err_w, 2),
                   (os.POSIX_SPAWN_OPEN, 1, "/dev/null", os.O_WRONLY, 0)]
        try:
            self.pid = os.posix_spawn(self.ip, ["ip", "-force", "-batch", "-"],
                                      {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}, file_actions=actions)
        finally:
            os.close(in_r)
            os.close(err_w)
        self.pidfd = os.pidfd_open(self.pid)  # kills stay aimed at it even once the agent's reaper has run
        for fd in (in_w, err_r):
            os.set_inheritable(fd, False)
        self.stdin, self.stderr, self.buffered, self.lines = in_w, err_r, b"", 0

    def close(self) -> None:
        """End the process and reap it. Killed, not sent EOF: a forked child of the agent that has not exec'd
        yet may still hold a copy of the pipe's writing end."""
        for fd in (self.stdin, self.stderr):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self.stdin = self.stderr = -1
        if self.pidfd >= 0:
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(self.pidfd, signal.SIGKILL)
            os.close(self.pidfd)
            self.pidfd = -1
        if self.pid:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(self.pid, 0)
            self.pid = 0

    def _alive(self) -> bool:
        """Whether the process still reads: anything on its stderr between batches means it ended (EOF)."""
        if self.stderr < 0:
            return False
        ready, _, _ = select.select([self.stderr], [], [], 0)
        if not ready:
            return True
        if os.read(self.stderr, 65536):
            return True  # a stray line: the next batch's reader skips to its own sentinel
        self.close()
        return False

    def run(self, commands: list[str], timeout: float = 10.0) -> None:
        """Run the commands; raise OSError with iproute2's own words when any of them failed."""
        if not self._alive():
            self.start()
        text = "".join(c + "\n" for c in commands) + SENTINEL + "\n"
        try:
            os.write(self.stdin, text.encode())
        except BrokenPipeError:
            self.close()
            self.start()
            os.write(self.stdin, text.encode())
        first = self.lines + 1
        self.lines += len(commands) + 1
        errors = self._read_until(self.lines, timeout)
        failed = [f"{' '.join(msg)} (in: {commands[n - first]})" for n, msg in errors if first <= n < self.lines]
        if failed:
            raise OSError(f"ip: {'; '.join(failed)}")

    def _read_until(self, last: int, timeout: float) -> list[tuple[int, list[str]]]:
        """Each failed line's number and messages, up to and including line `last`."""
        deadline = time.monotonic() + timeout
        failed: list[tuple[int, list[str]]] = []
        pending: list[str] = []
        while True:
            while b"\n" in self.buffered:
                raw, self.buffered = self.buffered.split(b"\n", 1)
                line = raw.decode(errors="replace").strip()
                m = FAILED.fullmatch(line)
                if m is None:
                    if line:
                        pending.append(line)
                    continue
                failed.append((int(m.group(1)), pending))
                pending = []
                if int(m.group(1)) >= last:
                    return failed
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self.stderr], [], [], max(0.0, left))
            if not ready:
                self.close()
                raise OSError(f"ip: no answer within {timeout}s")
            chunk = os.read(self.stderr, 65536)
            if not chunk:
                self.close()
                raise OSError(f"ip: it ended before finishing ({'; '.join(pending) or 'no error printed'})")
            self.buffered += chunk
