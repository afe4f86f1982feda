"""QEMU's command line and process. The device set is fixed and identical for a template and every VM restored
from it (migration needs the same devices); what differs per container is attached to it after the restore:
the 9p share's host directory, the tap behind the NIC, the channel socket."""

from __future__ import annotations

import ctypes
import os
import select
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from runtime.runvm import limits

QEMU = "qemu-system-x86_64"
TEMPLATE_MAC = "52:54:00:76:6d:01"
"""The NIC every VM starts with; the agent gives it the veth's MAC."""
DEFAULT_TB_MIB = 16
LAYOUT_VERSION = "4"
"""Bump when the device set changes: it is part of the template key."""


@dataclass(frozen=True)
class Size:
    mem_mib: int = 512
    vcpus: int = 1
    max_vcpus: int = field(default_factory=lambda: max(1, os.cpu_count() or 1))
    slots: int = 8
    maxmem_mib: int = 16384

    def key(self) -> str:
        return f"m{self.mem_mib}c{self.vcpus}x{self.max_vcpus}s{self.slots}M{self.maxmem_mib}"


@dataclass
class VMConfig:
    kernel: Path
    initrd: Path
    osimage: Path
    cmdline: str
    share_dir: Path
    agent_sock: Path
    qmp_sock: Path
    size: Size = field(default_factory=Size)
    accel: str = "tcg"
    ram_file: Path | None = None
    ram_shared: bool = False
    incoming: bool = False
    tap_fd: int | None = None
    console_log: Path | None = None
    tb_size_mib: int = DEFAULT_TB_MIB
    """TCG's translation cache: it fills up in every VM, so it is per-container memory. A container's start
    runs about 31 MB of translated code (measured with `info jit`), so 16 MiB is flushed about four times per
    start while 32 MiB holds it: ~0.45 s faster, ~15 MB more per idle container. runvm --tb-mib chooses."""


def argv(cfg: VMConfig) -> list[str]:
    s = cfg.size
    # One TCG thread for all vCPUs: with a thread per vCPU, QEMU 7.2 asserts (tcg_region_initial_alloc) when a
    # CPU is hot-plugged after the translation buffer's regions are in use; one buffer also costs less memory.
    accel = "kvm" if cfg.accel == "kvm" else f"tcg,thread=single,tb-size={cfg.tb_size_mib}"
    args = [
        QEMU, "-name", "runvm", "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
        "-machine", "pc,memory-backend=ram0", "-accel", accel, "-cpu", "host" if cfg.accel == "kvm" else "qemu64",
        "-smp", f"{s.vcpus},maxcpus={s.max_vcpus}",
        "-m", f"{s.mem_mib}M,slots={s.slots},maxmem={s.maxmem_mib}M",
        "-kernel", str(cfg.kernel), "-initrd", str(cfg.initrd), "-append", cfg.cmdline,
        "-drive", f"file={cfg.osimage},if=none,id=os,format=raw,readonly=on,cache=none,aio=threads",
        "-device", "virtio-blk-pci,drive=os,id=osdisk",
        "-device", "virtio-serial-pci,id=vser0",
        "-chardev", f"socket,id=agent,path={cfg.agent_sock},server=on,wait=off",
        "-device", "virtserialport,chardev=agent,name=vmparity.agent,id=agentport",
        "-fsdev", f"local,id=share,path={cfg.share_dir},security_model=passthrough,multidevs=remap",
        "-device", "virtio-9p-pci,fsdev=share,mount_tag=share,id=sharedev",
        "-device", "virtio-rng-pci,id=rng0",
        "-device", "vmgenid,guid=auto,id=vmgenid0",
        "-qmp", f"unix:{cfg.qmp_sock},server=on,wait=off",
        # every QEMU thread is a task in the container's host pids cgroup (limits.py counts them)
        "-object", f"main-loop,id=mainloop,thread-pool-max={limits.QEMU_THREAD_POOL_MAX}",
        "-serial", f"file:{cfg.console_log}" if cfg.console_log else "null",
    ]
    if cfg.ram_file is not None:
        args += ["-object", f"memory-backend-file,id=ram0,size={s.mem_mib}M,mem-path={cfg.ram_file},"
                            f"share={'on' if cfg.ram_shared else 'off'},prealloc=off"]
    else:
        args += ["-object", f"memory-backend-ram,id=ram0,size={s.mem_mib}M"]
    if cfg.tap_fd is not None:
        args += ["-netdev", f"tap,id=net0,fd={cfg.tap_fd},vhost=off"]
    else:
        args += ["-netdev", "hubport,id=net0,hubid=0"]
    args += ["-device", f"virtio-net-pci,netdev=net0,mac={TEMPLATE_MAC},id=nic0"]
    if cfg.incoming:
        args += ["-incoming", "defer"]
    return args


_libc = ctypes.CDLL(None, use_errno=True)


def _die_with_parent() -> None:
    _libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG: no VM outlives its shim, even after kill -9


def launch(cfg: VMConfig, log_path: Path, die_with_parent: bool = True) -> subprocess.Popen[bytes]:
    """Start QEMU with no access to the caller's stdio (containerd waits for EOF on those pipes). A pooled VM
    outlives its keeper (die_with_parent=False): its agent's hold ties it to whoever holds its channel."""
    pass_fds = (cfg.tap_fd,) if cfg.tap_fd is not None else ()
    with open(log_path, "ab") as log:
        return subprocess.Popen(argv(cfg), stdin=subprocess.DEVNULL, stdout=log, stderr=log, pass_fds=pass_fds,
                                preexec_fn=_die_with_parent if die_with_parent else None, close_fds=True)


class Adopted:
    """A QEMU that is not our child (a pooled VM): Popen's poll/wait/pid, through a pidfd, so a reused pid is
    never signalled. Its exit status is not ours to collect."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None
        self.fd = os.pidfd_open(pid)

    def poll(self) -> int | None:
        if self.returncode is None and select.select([self.fd], [], [], 0)[0]:
            self.returncode = -1
        return self.returncode

    def wait(self, timeout: float | None = None) -> int | None:
        if self.returncode is None and select.select([self.fd], [], [], timeout)[0]:
            self.returncode = -1
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            signal.pidfd_send_signal(self.fd, sig)

    def close(self) -> None:
        os.close(self.fd)


def stop(proc: subprocess.Popen[bytes] | Adopted, qmp_sock: Path | None = None) -> str:
    """End the VM the one way (stop.py: QMP quit, SIGTERM, SIGKILL, bounded) and collect it: a Popen records
    its returncode, an Adopted one notes it is gone. Returns how it ended."""
    from runtime.runvm.vm import stop as stopmod

    if proc.poll() is not None:
        return stopmod.GONE
    if isinstance(proc, Adopted):
        how = stopmod.stop(proc.pid, qmp_sock, pidfd=proc.fd)
        proc.poll()
        return how
    how = stopmod.stop(proc.pid, qmp_sock, reap=False)
    if how != stopmod.STUCK:
        proc.wait()
    return how
