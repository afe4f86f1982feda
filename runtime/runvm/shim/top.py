"""`docker top` for processes that live in a VM, and what its PIDs are.

Docker asks the runtime for pids (`ps --format json`), then runs the *host's* ps and keeps the rows with those
pids. A guest process has no host pid, so the vm-shim keeps one stand-in per guest process: a host process
started with the guest process's argv, name and uid, so the host's ps shows the container's commands and users
(the PID, PPID, STIME and TIME columns are the stand-in's own).

A stand-in is the guest process's proxy on the host, so a PID from `docker top` can be used as under runc:

- every signal it receives is forwarded to its guest process (a 371-byte program, stand_in.S: all signals
  blocked and read from a signalfd, each signal number written to the vm-shim over fd 3, a SOCK_SEQPACKET
  socket). SIGKILL and SIGSTOP cannot be caught: the vm-shim sees its stand-in killed or stopped (it is the
  parent) and sends the same signal to the guest process; a SIGCONT reaches the stand-in's signalfd as well.
- it ends when its guest process ends (the agent watches the process's pidfd): with the same exit code, or
  killed by the same signal (a core-dumping signal becomes exit 128+N: the host would dump the stand-in's core).
  A stand-in stopped on the host is continued so that it reads that message.

Stand-ins run in the host's root cgroups, not the container's: they are runvm's bookkeeping (like containerd's
shim), and would otherwise count against the container's pids and memory limits on the host.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import signal
import socket
import struct
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

_ENTRY = 0x400078
CODE = bytes.fromhex(
    "4881ec0001000048c78424c0000000ffffffffb80e00000031ff488db424c000000031d241ba080000000f05b8210100"
    "00bfffffffff488db424c0000000ba080000004531d20f0585c00f881a0100004189c4c7042403000000c74424040100"
    "00004489642408c744240c01000000b8070000004889e7be02000000baffffffff0f0585c078e80fb744240e85c0742e"
    "31c04489e7488d742410ba800000000f053d800000007516b801000000bf03000000488d742410ba040000000f050fb7"
    "44240685c074a831c0bf03000000488db42490000000ba080000000f0583f8080f85840000008b9c249400000083bc24"
    "9000000001756f31c048898424a000000048898424a800000048898424b000000048898424b8000000b80d00000089df"
    "488db424a000000031d241ba080000000f05b8270000000f0589c7b83e00000089de0f05b80e000000bf01000000488d"
    "b424c000000031d241ba080000000f0581c38000000089dfeb0231ffb8e70000000f05")
"""stand_in.S assembled (`as` and `objcopy -O binary -j .text`; tests/runvm/test_host_limits.py checks they
match)."""
CHANNEL_FD = 3
EXIT, DIE = 0, 1
"""What the vm-shim sends a stand-in (two int32): exit with a code, or die of a signal."""
CORE_SIGNALS = frozenset({signal.SIGQUIT, signal.SIGILL, signal.SIGTRAP, signal.SIGABRT, signal.SIGBUS,
                          signal.SIGFPE, signal.SIGSEGV, signal.SIGXCPU, signal.SIGXFSZ, signal.SIGSYS})


def image() -> bytes:
    """A static x86-64 ELF: one read-execute segment holding the headers and CODE."""
    ehdr = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8) + struct.pack(
        "<HHIQQQIHHHHHH", 2, 62, 1, _ENTRY, 64, 0, 0, 64, 56, 1, 0, 0, 0)
    size = 64 + 56 + len(CODE)
    phdr = struct.pack("<IIQQQQQQ", 1, 5, 0, _ENTRY - 0x78, _ENTRY - 0x78, size, size, 0x1000)
    return ehdr + phdr + CODE


def end_message(status: dict[str, int] | None) -> bytes:
    """How a stand-in ends for its guest process's wait status ({"code": N} or {"signal": N}; None: unknown)."""
    if status and status.get("signal"):
        sig = int(status["signal"])
        return struct.pack("<ii", EXIT, 128 + sig) if sig in CORE_SIGNALS else struct.pack("<ii", DIE, sig)
    return struct.pack("<ii", EXIT, int((status or {}).get("code") or 0))


class StandIn:
    def __init__(self, pid: int, key: str, channel: socket.socket) -> None:
        self.pid, self.key, self.channel = pid, key, channel
        self.status: int | None = None
        """Its wait status once reaped."""
        self.ending = False
        """The vm-shim ended it: its death is not something to forward."""


class StandIns:
    """The stand-ins of one container. `forward(guest_pid, signal)` sends a signal to a guest process; `watch`
    asks the agent to report when guest processes end (StandIns.ended); `loop` is the vm-shim's."""

    def __init__(self, directory: str | Path, loop: Any, forward: Callable[[int, int], None],
                 watch: Callable[[list[int]], None]) -> None:
        self.dir = Path(directory) / hashlib.sha256(image()).hexdigest()[:12]
        self.exe = self.dir / "stand-in"
        self.loop, self.forward, self.watch = loop, forward, watch
        self.by_guest: dict[int, StandIn] = {}
        self.sigchld = False

    def _ensure_exe(self) -> None:
        if not self.exe.exists():
            self.dir.mkdir(parents=True, exist_ok=True)
            os.chmod(self.dir.parent, 0o755)
            os.chmod(self.dir, 0o755)
            with tempfile.NamedTemporaryFile(dir=self.dir, delete=False) as f:
                f.write(image())
            os.chmod(f.name, 0o755)
            os.replace(f.name, self.exe)
        if not self.sigchld:  # a stand-in stopped by SIGSTOP: its parent is told, nobody else can be
            self.sigchld = True
            self.loop.add_signal_handler(signal.SIGCHLD, self._children_changed)

    def _link_named(self, comm: str) -> Path:
        """comm comes from the executed path's last component: one symlink per distinct name."""
        safe = comm.replace("/", "_")[:15] or "process"
        link = self.dir / "names" / safe
        if not link.is_symlink():
            link.parent.mkdir(parents=True, exist_ok=True)
            os.chmod(link.parent, 0o755)
            with contextlib.suppress(FileExistsError):
                os.symlink(self.exe, link)
        return link

    def _spawn(self, gpid: int, proc: dict[str, Any], key: str) -> StandIn:
        """fork and exec by hand (not subprocess: the channel must be fd 3 exactly, and the child must leave the
        container's cgroups and change uid before the exec)."""
        from runtime.runvm import cgroups
        from runtime.runvm.vm.qemu import _die_with_parent

        argv = proc.get("args") or [proc.get("comm") or "?"]
        uid = int(proc.get("uid", 0))
        exe = str(self._link_named(proc.get("comm") or argv[0]))
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
        execd_r, execd_w = os.pipe2(os.O_CLOEXEC)  # EOF once the child has exec'd (or died): ps must find argv
        try:
            pid = os.fork()
            if pid == 0:
                try:
                    # out of the way of 0-3 first: either may be one of them in the vm-shim
                    done = fcntl.fcntl(execd_w, fcntl.F_DUPFD_CLOEXEC, 100)
                    channel = fcntl.fcntl(theirs.fileno(), fcntl.F_DUPFD_CLOEXEC, 100)
                    null = os.open(os.devnull, os.O_RDWR)
                    for fd in (0, 1, 2):
                        os.dup2(null, fd)
                    os.dup2(channel, CHANNEL_FD)  # inheritable
                    os.closerange(CHANNEL_FD + 1, done)
                    os.closerange(done + 1, 1 << 20)
                    for sig in (signal.SIGPIPE, signal.SIGXFSZ):  # ignored by Python, would stay so over exec
                        signal.signal(sig, signal.SIG_DFL)
                    os.chdir("/")  # not the bundle directory containerd started us in
                    cgroups.leave()
                    os.setgroups([])
                    os.setgid(uid)
                    os.setuid(uid)
                    _die_with_parent()  # after the uid change, which would clear it
                    os.execv(exe, argv)
                finally:
                    os._exit(127)
            os.close(execd_w)
            execd_w = -1
            os.read(execd_r, 1)
        finally:
            theirs.close()
            os.close(execd_r)
            if execd_w >= 0:
                os.close(execd_w)
        ours.setblocking(False)
        s = StandIn(pid, key, ours)
        self.loop.add_reader(ours.fileno(), lambda: self._readable(gpid, s))
        return s

    def _readable(self, gpid: int, s: StandIn) -> None:
        try:
            msg = s.channel.recv(64)
        except BlockingIOError:
            return
        except OSError:
            msg = b""
        if len(msg) == 4:
            if not s.ending:
                self.forward(gpid, struct.unpack("<i", msg)[0])
            return
        if msg:
            return
        # the stand-in is gone: reap it; killed by someone else with SIGKILL means the guest process is too
        self.loop.remove_reader(s.channel.fileno())
        s.channel.close()
        try:
            _, status = os.waitpid(s.pid, 0)
        except ChildProcessError:
            status = 0
        s.status = status
        if self.by_guest.get(gpid) is s:
            del self.by_guest[gpid]
        if not s.ending and os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL:
            self.forward(gpid, signal.SIGKILL)

    def _children_changed(self, _sig: int) -> None:
        for gpid, s in list(self.by_guest.items()):
            with contextlib.suppress(ChildProcessError, OSError):
                info = os.waitid(os.P_PID, s.pid, os.WSTOPPED | os.WNOHANG)
                if info is not None and info.si_code == os.CLD_STOPPED and not s.ending:
                    self.forward(gpid, signal.SIGSTOP)

    def sync(self, guest: list[dict[str, Any]]) -> list[int]:
        """Make the stand-ins match the guest's process list; return their host pids in the guest's order."""
        self._ensure_exe()
        alive = {p["pid"]: p for p in guest}
        for gpid in [g for g in self.by_guest if g not in alive]:
            self._end(gpid, None)
        pids, new = [], []
        for gpid, proc in alive.items():
            key = f"{proc.get('start_ticks')}:{' '.join(proc.get('args') or [])}"
            current = self.by_guest.get(gpid)
            if current is not None and (current.key != key or current.status is not None):
                self._end(gpid, None)  # the same guest process after an exec: a new stand-in, new argv
                current = None
            if current is None:
                try:
                    current = self._spawn(gpid, proc, key)
                except OSError:
                    continue  # a process we cannot stand in for is left out rather than failing docker top
                self.by_guest[gpid] = current
                new.append(gpid)
            pids.append(current.pid)
        if new:
            self.watch(new)
        return pids

    def ended(self, gpid: int, status: dict[str, int] | None) -> None:
        """The guest process ended (the agent's "gone" event, or already gone when watched)."""
        self._end(gpid, status)

    def _end(self, gpid: int, status: dict[str, int] | None) -> None:
        s = self.by_guest.pop(gpid, None)
        if s is None or s.ending:
            return
        s.ending = True
        try:
            s.channel.send(end_message(status))
        except OSError:
            with contextlib.suppress(ProcessLookupError):
                os.kill(s.pid, signal.SIGKILL)
            return
        # a stand-in stopped on the host (kill -STOP) cannot read its message: continue it (SIGCONT resumes a
        # process even while blocked; the stand-in then reports it, which is not forwarded once ending)
        with contextlib.suppress(ProcessLookupError):
            os.kill(s.pid, signal.SIGCONT)

    def stop_all(self) -> None:
        for s in list(self.by_guest.values()):
            s.ending = True
            with contextlib.suppress(ProcessLookupError):
                os.kill(s.pid, signal.SIGKILL)
        for s in list(self.by_guest.values()):
            with contextlib.suppress(ChildProcessError):
                os.waitpid(s.pid, 0)
        self.by_guest.clear()
