"""The tty side of `-t`: handing a pty master to containerd's console socket, and window sizes."""

from __future__ import annotations

import array
import fcntl
import socket
import struct
import termios

from runtime.runvm.errors import RunvmError


def send_master(path: str, master: int) -> None:
    """Exactly one fd with SCM_RIGHTS, as runc does; containerd copies between it and the client."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.connect(path)
            socket.send_fds(s, [b"/dev/ptmx"], [master])
    except OSError as e:
        raise RunvmError(f"console socket {path}: {e.strerror}") from e


def window_size(fd: int) -> tuple[int, int]:
    raw = fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8)
    rows, cols, _x, _y = struct.unpack("HHHH", raw)
    return rows, cols


def set_window_size(fd: int, rows: int, cols: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, array.array("H", [rows, cols, 0, 0]))
