"""What this host (or the observed stack) lacks, by name: the only reasons a scenario may declare for runc's
baseline being unavailable.

A scenario lists the reasons that apply to it in limitations.yaml (`unavailable_when`). A baseline refusal is
`baseline-unavailable` only while one of them holds on this host, probed here for the stack whose daemon the run
observes; any other baseline failure is the suite's `error`. Each probe answers None (nothing is missing) or a
sentence naming what is missing.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from harness.setup import criu, dockerd

if TYPE_CHECKING:
    from harness.stacks import Endpoint

Probe = Callable[["Endpoint | None"], str | None]

CAP_NAMES = (
    "chown", "dac_override", "dac_read_search", "fowner", "fsetid", "kill", "setgid", "setuid", "setpcap",
    "linux_immutable", "net_bind_service", "net_broadcast", "net_admin", "net_raw", "ipc_lock", "ipc_owner",
    "sys_module", "sys_rawio", "sys_chroot", "sys_ptrace", "sys_pacct", "sys_admin", "sys_boot", "sys_nice",
    "sys_resource", "sys_time", "sys_tty_config", "mknod", "lease", "audit_write", "audit_control", "setfcap",
    "mac_override", "mac_admin", "syslog", "wake_alarm", "block_suspend", "audit_read", "perfmon", "bpf",
    "checkpoint_restore",
)


def criu_unusable(stack: Endpoint | None = None) -> str | None:
    """runc checkpoints with the criu it finds on dockerd's PATH (a container stack's: its own package's)."""
    if stack is not None and stack.launcher:
        done = subprocess.run([*stack.launcher, "sh", "-c", "c=$(command -v criu) && $c check 2>&1 | tail -n1"],
                              capture_output=True, text=True, timeout=60)
        last = (done.stdout.strip().splitlines() or [""])[-1]
        return None if done.returncode == 0 and "Looks good" in last else (
            f"`criu check` in the {stack.stack} stack fails: {last or done.stderr.strip()}")
    _pid, env = dockerd.running_environ()
    if env is None:
        return "dockerd's environment cannot be read, so the criu runc would use is unknown"
    found = shutil.which("criu", path=env.get("PATH") or os.defpath)
    if found is None:
        return f"no criu on dockerd's PATH ({env.get('PATH')})"
    ok, text = criu.check(Path(found))
    return None if ok else f"`criu check` of {found} fails on this kernel: {text.splitlines()[-1] if text else ''}"


def bounding_set_lacks_caps(stack: Endpoint | None = None) -> str | None:
    """--privileged grants every capability in the bounding set dockerd (and so runc) inherits."""
    pid = (stack.dockerd_pid if stack is not None and stack.launcher else None) or dockerd.running_environ()[0] \
        or os.getpid()
    try:
        last = int(Path("/proc/sys/kernel/cap_last_cap").read_text())
        status = Path(f"/proc/{pid}/status").read_text()
    except (OSError, ValueError) as e:
        return f"cannot read the bounding set: {e}"
    bnd = next((int(line.split()[1], 16) for line in status.splitlines() if line.startswith("CapBnd:")), None)
    if bnd is None:
        return "the kernel shows no CapBnd"
    missing = [CAP_NAMES[i] if i < len(CAP_NAMES) else str(i) for i in range(last + 1) if not bnd >> i & 1]
    if not missing:
        return None
    return f"the host's capability bounding set lacks {', '.join('CAP_' + m.upper() for m in missing)}"


def restore_loses_the_task_pid(stack: Endpoint | None = None) -> str | None:
    """containerd 2.x hands Docker no pid for a task restored from a checkpoint, so `docker start --checkpoint`
    fails binding /proc/0/ns/net, for runc as for any runtime (containerd/containerd#12141, open)."""
    version = (stack.versions.get("containerd") if stack is not None else None) or ""
    major = version.split(".", 1)[0]
    if major.isdigit() and int(major) >= 2:
        return (f"containerd {version} restores a checkpoint without the task's pid, so Docker cannot bind its "
                "network namespace (https://github.com/containerd/containerd/issues/12141)")
    return None


def no_resctrl(stack: Endpoint | None = None) -> str | None:
    """Intel RDT (docker run --intel-rdt-l3-cbm, resctrl statistics) needs the kernel's resctrl filesystem."""
    try:
        filesystems = Path("/proc/filesystems").read_text().split()
    except OSError:
        filesystems = []
    if "resctrl" not in filesystems:
        return "the kernel has no resctrl filesystem (no Intel RDT / AMD QoS support, or not built in)"
    mounts = Path("/proc/self/mounts").read_text().split("\n")
    if not any(len(m.split()) > 2 and m.split()[2] == "resctrl" for m in mounts):
        return "resctrl is not mounted at /sys/fs/resctrl"
    return None


PROBES: dict[str, tuple[str, Probe]] = {
    "criu-unusable": ("no working criu for runc: checkpoint/restore cannot be done", criu_unusable),
    "bounding-set-lacks-caps": ("the host's bounding set lacks capabilities --privileged grants",
                                bounding_set_lacks_caps),
    "no-resctrl": ("the host has no resctrl (Intel RDT)", no_resctrl),
    "restore-loses-the-task-pid": ("the stack's containerd cannot restore a checkpoint for Docker",
                                   restore_loses_the_task_pid),
}
"""id -> (what it means, probe). limitations.yaml names these ids; a unit test keeps the two in step."""


@functools.cache
def lacking(reason_id: str, stack: Endpoint | None = None) -> str | None:
    """The probe's answer, once per process and stack: a host does not gain a kernel feature mid-run."""
    try:
        _meaning, probe = PROBES[reason_id]
    except KeyError:
        raise KeyError(f"unknown baseline-unavailable reason {reason_id!r}; known: {', '.join(PROBES)}") from None
    return probe(stack)


def first_lacking(reason_ids: tuple[str, ...], stack: Endpoint | None = None) -> tuple[str, str] | None:
    """The first declared reason that holds on this host for the stack: (id, what is missing), or None."""
    for rid in reason_ids:
        detail = lacking(rid, stack)
        if detail is not None:
            return rid, detail
    return None
