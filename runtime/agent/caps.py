"""Linux capability names and applying an OCI process's capability sets."""

from __future__ import annotations

import contextlib

from runtime.agent import libc

NAMES = [
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID", "SETPCAP",
    "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW", "IPC_LOCK", "IPC_OWNER",
    "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE",
    "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP",
    "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF",
    "CHECKPOINT_RESTORE",
]
NUMBER = {f"CAP_{n}": i for i, n in enumerate(NAMES)}


def last_cap() -> int:
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            return int(f.read())
    except OSError:
        return len(NAMES) - 1


def mask(names: list[str] | None) -> int:
    """Unknown names (a newer host than our table) are ignored, as runc does with a warning."""
    m = 0
    for n in names or []:
        if n in NUMBER:
            m |= 1 << NUMBER[n]
    return m


def drop_bounding(keep: int) -> None:
    for cap in range(last_cap() + 1):
        if not keep & (1 << cap):
            with contextlib.suppress(OSError):
                libc.prctl(libc.PR_CAPBSET_DROP, cap)


def apply(spec: dict) -> None:
    """After the uid switch (with keep-caps): the three sets, then the ambient ones."""
    eff, perm, inh = mask(spec.get("effective")), mask(spec.get("permitted")), mask(spec.get("inheritable"))
    libc.capset(eff, perm, inh)
    libc.prctl(libc.PR_CAP_AMBIENT, libc.PR_CAP_AMBIENT_CLEAR_ALL)
    for n in spec.get("ambient") or []:
        if n in NUMBER:
            with contextlib.suppress(OSError):
                libc.prctl(libc.PR_CAP_AMBIENT, libc.PR_CAP_AMBIENT_RAISE, NUMBER[n])
