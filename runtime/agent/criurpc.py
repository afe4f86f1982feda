"""The part of CRIU's RPC protocol (`criu swrk`, messages of images/rpc.proto, proto2) the agent needs for a restore.

Why RPC and not the command line: only RPC offers `orphan_pts_master`, with which CRIU recreates a terminal whose
master end was outside the dump and hands that master back (what a -t container needs). The guest has no protobuf
library; these few messages are encoded by hand.
"""

from __future__ import annotations

import array
import os
import socket
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field

RESTORE = 2
NOTIFY = 6
CG_IGNORE = 0

# criu_opts field numbers (images/rpc.proto)
IMAGES_DIR_FD, LOG_LEVEL, LOG_FILE, NOTIFY_SCRIPTS, ROOT, WORK_DIR_FD = 1, 9, 10, 12, 13, 17
SHELL_JOB, INHERIT_FD, MANAGE_CGROUPS_MODE, EXTERNAL, ORPHAN_PTS_MASTER = 7, 27, 34, 37, 50


def _varint(n: int) -> bytes:
    n &= (1 << 64) - 1  # negative int32s are ten bytes of two's complement
    out = bytearray()
    while True:
        low = n & 0x7F
        n >>= 7
        if n:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


class Message:
    """A protobuf message being built, field by field."""

    def __init__(self) -> None:
        self.data = bytearray()

    def number(self, num: int, value: int) -> Message:
        """int32/uint32/bool/enum"""
        self.data += _varint(num << 3) + _varint(value)
        return self

    def blob(self, num: int, value: bytes) -> Message:
        self.data += _varint(num << 3 | 2) + _varint(len(value)) + value
        return self

    def text(self, num: int, value: str) -> Message:
        return self.blob(num, value.encode())

    def sub(self, num: int, value: Message) -> Message:
        return self.blob(num, bytes(value.data))


def decode(data: bytes) -> dict[int, list[int | bytes]]:
    """Field number -> values (ints for varints, bytes for length-delimited); other wire types are skipped."""
    fields: dict[int, list[int | bytes]] = {}
    i = 0

    def varint() -> int:
        nonlocal i
        shift = value = 0
        while True:
            b = data[i]
            i += 1
            value |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return value

    while i < len(data):
        key = varint()
        num, wire = key >> 3, key & 7
        if wire == 0:
            fields.setdefault(num, []).append(varint())
        elif wire == 2:
            n = varint()
            fields.setdefault(num, []).append(bytes(data[i:i + n]))
            i += n
        elif wire == 1:
            i += 8
        elif wire == 5:
            i += 4
        else:
            raise ValueError(f"protobuf wire type {wire} in a CRIU message")
    return fields


def _first(fields: dict[int, list[int | bytes]], num: int, default: int | bytes = 0) -> int | bytes:
    return fields.get(num, [default])[0]


@dataclass
class RestoreResult:
    ok: bool
    pid: int = 0
    error: str = ""
    fds: dict[str, int] = field(default_factory=dict)
    """Descriptors CRIU sent with its notifications, by script name (e.g. "orphan-pts-master")."""


def restore(criu: str, opts: Message, pass_fds: list[int], preexec_fn: Callable[[], None]) -> RestoreResult:
    """One RESTORE request to a fresh `criu swrk`, answering its notifications; blocks until it is done."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    result = RestoreResult(False)
    try:
        proc = subprocess.Popen([criu, "swrk", str(theirs.fileno())], pass_fds=[theirs.fileno(), *pass_fds],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                preexec_fn=preexec_fn)
    finally:
        theirs.close()
    try:
        ours.send(bytes(Message().number(1, RESTORE).sub(2, opts).data))
        while True:
            data, anc, _flags, _addr = ours.recvmsg(1 << 16, socket.CMSG_SPACE(4 * 4))
            if not data:
                result.error = "criu swrk ended without an answer"
                break
            fds = array.array("i")
            for level, kind, raw in anc:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    fds.frombytes(raw[: len(raw) - len(raw) % 4])
            resp = decode(data)
            if _first(resp, 1) == NOTIFY:
                notify = decode(_first(resp, 5, b""))  # type: ignore[arg-type]
                script = bytes(_first(notify, 1, b"")).decode()  # type: ignore[arg-type]
                for fd in fds:
                    if script in result.fds:
                        os.close(fd)
                    else:
                        result.fds[script] = fd
                ours.send(bytes(Message().number(1, NOTIFY).number(3, 1).data))
                continue
            for fd in fds:
                os.close(fd)
            result.ok = bool(_first(resp, 2))
            result.pid = int(_first(decode(_first(resp, 4, b"")), 1))  # type: ignore[arg-type]
            if not result.ok:
                errno_ = int(_first(resp, 7))
                msg = bytes(_first(resp, 9, b"")).decode(errors="replace")  # type: ignore[arg-type]
                result.error = msg or (os.strerror(errno_) if errno_ else "restore failed")
            break
    finally:
        ours.close()
        proc.wait()
    return result
