"""`docker top` for processes that live in a VM.

Docker asks the runtime for pids (`ps --format json`), then runs the *host's* ps and keeps the rows with those
pids. A guest process has no host pid, so the vm-shim keeps one stand-in per guest process: a 4 KiB program that
only sleeps, started with the guest process's argv, name and uid. The host's ps then shows the container's
commands and users; the PID, PPID, STIME and TIME columns are the stand-ins' own (the residual difference)."""

from __future__ import annotations

import contextlib
import os
import signal
import struct
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from runtime.runvm.vm.qemu import _die_with_parent

_ENTRY = 0x400078


def image() -> bytes:
    """A static x86-64 ELF whose only code is `pause` in a loop."""
    code = b"\xb8\x22\x00\x00\x00\x0f\x05\xeb\xf7"  # mov eax, SYS_pause; syscall; jmp back
    ehdr = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8) + struct.pack(
        "<HHIQQQIHHHHHH", 2, 62, 1, _ENTRY, 64, 0, 0, 64, 56, 1, 0, 0, 0)
    size = 64 + 56 + len(code)
    phdr = struct.pack("<IIQQQQQQ", 1, 5, 0, _ENTRY - 0x78, _ENTRY - 0x78, size, size, 0x1000)
    return ehdr + phdr + code


class StandIns:
    def __init__(self, directory: str | Path) -> None:
        self.dir = Path(directory)
        self.exe = self.dir / "stand-in"
        self.by_guest: dict[int, tuple[subprocess.Popen[bytes], str]] = {}

    def _ensure_exe(self) -> None:
        if not self.exe.exists():
            self.dir.mkdir(parents=True, exist_ok=True)
            os.chmod(self.dir, 0o755)
            with tempfile.NamedTemporaryFile(dir=self.dir, delete=False) as f:
                f.write(image())
            os.chmod(f.name, 0o755)
            os.replace(f.name, self.exe)

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

    def _spawn(self, proc: dict[str, Any]) -> subprocess.Popen[bytes]:
        argv = proc.get("args") or [proc.get("comm") or "?"]
        uid = int(proc.get("uid", 0))

        def become() -> None:
            _die_with_parent()
            os.setgid(uid)
            os.setuid(uid)

        return subprocess.Popen(argv, executable=str(self._link_named(proc.get("comm") or argv[0])),
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                preexec_fn=become, close_fds=True)

    def sync(self, guest: list[dict[str, Any]]) -> list[int]:
        """Make the stand-ins match the guest's process list; return their host pids in the guest's order."""
        self._ensure_exe()
        alive = {p["pid"]: p for p in guest}
        for gpid in [g for g in self.by_guest if g not in alive]:
            self._stop(gpid)
        pids = []
        for gpid, proc in alive.items():
            key = f"{proc.get('start_ticks')}:{' '.join(proc.get('args') or [])}"
            current = self.by_guest.get(gpid)
            if current is not None and (current[1] != key or current[0].poll() is not None):
                self._stop(gpid)
                current = None
            if current is None:
                try:
                    current = (self._spawn(proc), key)
                except OSError:
                    continue  # a process we cannot stand in for is left out rather than failing docker top
                self.by_guest[gpid] = current
            pids.append(current[0].pid)
        return pids

    def _stop(self, gpid: int) -> None:
        popen, _ = self.by_guest.pop(gpid)
        with contextlib.suppress(ProcessLookupError):
            popen.send_signal(signal.SIGKILL)
        with contextlib.suppress(Exception):
            popen.wait(timeout=2)

    def stop_all(self) -> None:
        for gpid in list(self.by_guest):
            self._stop(gpid)
