"""Stage: the init process's host stdio: fds 0/1/2 as containerd gave them (the resident relays them), or for
-t a pty whose master goes to containerd's console socket and whose slave becomes our terminal."""

from __future__ import annotations

import contextlib
import os
import termios
import tty
from dataclasses import dataclass

from runtime.runvm.errors import RunvmError
from runtime.runvm.shim import console
from runtime.runvm.shim.constants import INIT_STREAMS


@dataclass(frozen=True)
class Stdio:
    streams: dict[str, int]
    """The agent's stream ids for init's stdin, stdout and stderr."""
    tty_slave: int | None


def setup(terminal: bool, console_socket: str | None) -> Stdio:
    if not terminal:
        return Stdio(dict(INIT_STREAMS), None)
    if not console_socket:
        raise RunvmError("a terminal was requested but no --console-socket was given")
    master, slave = os.openpty()
    tty.setraw(slave, termios.TCSANOW)
    console.send_master(console_socket, master)
    os.close(master)
    _controlling_tty(slave)
    for fd in (0, 1, 2):
        with contextlib.suppress(OSError):
            os.close(fd)
    return Stdio(dict(INIT_STREAMS), slave)


def _controlling_tty(fd: int) -> None:
    import fcntl

    with contextlib.suppress(OSError):
        fcntl.ioctl(fd, termios.TIOCSCTTY, 0)
