"""KVM or TCG. KVM is used only where a real guest boot under it was proven on this host (the result is cached
per host kernel and QEMU binary); everywhere else QEMU's software emulation (TCG)."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

CACHE = Path("/var/lib/vmparity/accel.json")
QEMU = "qemu-system-x86_64"


def _cpu_flags() -> set[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def _cache_key() -> str:
    try:
        qemu_id = str(os.stat(subprocess.run(["which", QEMU], capture_output=True, text=True).stdout.strip()).st_mtime)
    except OSError:
        qemu_id = "?"
    return f"{os.uname().release}|{qemu_id}"


def _probe_boot() -> tuple[bool, str]:
    """Boot the guest kernel under KVM in probe mode: it prints a marker from the guest's Python and powers off."""
    from runtime.guest import build

    try:
        art = build.artifacts()
    except Exception as e:
        return False, f"no guest artifacts to probe with ({e})"
    log = Path("/run/vmparity-kvm-probe.log")
    argv = [QEMU, "-accel", "kvm", "-M", "pc", "-cpu", "host", "-nodefaults", "-no-user-config", "-display", "none",
            "-m", "512", "-kernel", str(art.kernel), "-initrd", str(art.initrd),
            "-append", build.kernel_cmdline("vmparity.probe=1"), "-drive",
            f"file={art.osimage},if=none,id=os,format=raw,readonly=on", "-device", "virtio-blk-pci,drive=os",
            "-serial", f"file:{log}", "-no-reboot"]
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        from runtime.runvm.vm import qemu

        qemu.stop(proc)  # no QMP on the probe: SIGTERM, then SIGKILL
        return False, "a guest under KVM did not finish booting within 30 s"
    ok = "VMPARITY-PYTHON-OK" in log.read_text(errors="replace") if log.exists() else False
    return ok, "a guest booted under KVM" if ok else "a guest under KVM did not reach userspace"


def choose() -> tuple[str, str]:
    """("kvm" | "tcg", why)."""
    forced = os.environ.get("RUNVM_ACCEL")
    if forced in ("kvm", "tcg"):
        return forced, "forced by RUNVM_ACCEL"
    if not os.path.exists("/dev/kvm"):
        return "tcg", "no /dev/kvm"
    if not _cpu_flags() & {"vmx", "svm"}:
        return "tcg", "/dev/kvm exists but the CPU has no vmx/svm flag (guests hang under KVM here)"
    key = _cache_key()
    try:
        cached = json.loads(CACHE.read_text())
        if cached.get("key") == key:
            return cached["accel"], cached["why"] + " (cached probe)"
    except (OSError, ValueError, KeyError):
        pass
    started = time.monotonic()
    ok, why = _probe_boot()
    accel = "kvm" if ok else "tcg"
    why = f"{why} ({time.monotonic() - started:.1f}s probe)"
    CACHE.parent.mkdir(parents=True, exist_ok=True)
    CACHE.write_text(json.dumps({"key": key, "accel": accel, "why": why}))
    return accel, why


def describe() -> str:
    accel, why = choose()
    return f"{accel} ({why})"
