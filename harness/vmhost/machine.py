"""Booting a kind-vm stack's machine for one run, and bringing its run directory back.

Each run boots a copy-on-write overlay of the cached image (nothing a run leaves reaches the next), a second disk
with a copy of the suite's tree as it is here (tracked and untracked files git does not ignore, plus the commit it
was copied at, so the shard's provenance names it), and the run directory shared over 9p at the same path as here,
so the evidence paths in its results are this machine's. The machine has no network device at all. QEMU dies with
the process that started it (PR_SET_PDEATHSIG), and a run's leftovers from a killed `vmparity remote` are removed
by the next one."""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import paths, procs, provenance
from harness.stack_data import StackData
from harness.vmhost import image as imagemod
from harness.vmhost.inside import REQUEST

QEMU = "qemu-system-x86_64"
SUITE_DISK_MIB = 256
CONSOLE = "console.log"
PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class Outcome:
    status: int
    """The suite's exit status inside the machine; -1: it never said (the machine stopped or timed out first)."""
    wall_s: float
    console: Path
    note: str


def _work(stack: StackData) -> Path:
    return imagemod.store(stack) / "runs"


def _die_with_parent() -> None:
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def remove_leftovers(stack: StackData) -> list[str]:
    """The QEMUs and work directories of earlier runs whose `vmparity remote` was killed: each is removed."""
    done = []
    for d in sorted(_work(stack).glob("*")) if _work(stack).exists() else []:
        with contextlib.suppress(OSError, ValueError):
            rec = json.loads((d / "qemu.json").read_text())
            if procs.start_time(rec["pid"]) == rec["start"]:
                procs.kill_tree(rec["pid"])
                done.append(f"qemu {rec['pid']}")
        shutil.rmtree(d, ignore_errors=True)
        done.append(f"work directory {d}")
    return done


def _suite_files() -> list[str]:
    listed = subprocess.run(["git", "-C", str(paths.REPO), "ls-files", "-z", "--cached", "--others",
                             "--exclude-standard"], capture_output=True, check=True).stdout
    return [f for f in listed.decode().split("\0") if f and (paths.REPO / f).is_file()]


def _suite_disk(target: Path) -> None:
    """An ext4 image holding a copy of the suite's tree and the commit it was copied at."""
    with tempfile.TemporaryDirectory(prefix="vmparity-suite-") as tmp:
        root = Path(tmp)
        for f in _suite_files():
            (root / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(paths.REPO / f, root / f)
        (root / paths.SUITE_SNAPSHOT.name).write_text(json.dumps(
            {**provenance.suite_commit(), "copied_from": os.uname().nodename}))
        made = subprocess.run(["mkfs.ext4", "-q", "-F", "-L", "vmparity-suite", "-d", str(root), str(target),
                               f"{SUITE_DISK_MIB}M"], capture_output=True, text=True)
        if made.returncode != 0:
            raise SystemExit(f"vmparity remote: making the suite's disk failed: {made.stderr.strip()}")


def qemu_argv(stack: StackData, img: imagemod.Image, overlay: Path, suite: Path, run_dir: Path,
              console: Path) -> list[str]:
    cmdline = " ".join([
        "console=ttyS0", "root=/dev/vda", "rw", f"init={imagemod.FIRST_PROCESS}", "panic=1",
        # the unified hierarchy only: no v1 controller can be mounted, as on a systemd host booted cgroup v2
        "cgroup_no_v1=all", "systemd.unified_cgroup_hierarchy=1",
        f"vmparity.repo={paths.REPO}", f"vmparity.out={run_dir}"])
    return [QEMU, "-nodefaults", "-no-reboot", "-display", "none", "-M", "pc", "-cpu", "max",
            # one host thread for both vCPUs: with multi-threaded TCG the guest kernel's text patching (int3 over a
            # static branch, then the new instruction) reached a vCPU stale and the guest died with "Oops: int3"
            # in __schedule (QEMU 7.2, kernel 7.2, seen once in five boots); round-robin TCG sees every write
            "-accel", "tcg,thread=single", "-smp", str(stack.cpus), "-m", str(stack.memory_mib),
            "-kernel", str(img.kernel), "-initrd", str(img.initrd), "-append", cmdline,
            "-drive", f"file={overlay},format=qcow2,if=virtio,cache=unsafe",
            "-drive", f"file={suite},format=raw,if=virtio,cache=unsafe",
            "-virtfs", f"local,path={run_dir},mount_tag=out,security_model=none,id=out",
            "-serial", f"file:{console}", "-nic", "none"]


def run(stack: StackData, run_dir: Path, args: list[str], *, timeout: float, log: Any = print) -> Outcome:
    """Boot the machine, let it run the suite into run_dir, wait for it to power off (or stop it at timeout)."""
    for line in remove_leftovers(stack):
        log(f"remote {stack.name}: removed a leftover {line}")
    img, done = imagemod.ensure(stack, log)
    log(f"remote {stack.name}: machine image {img.key} {done}")
    run_dir.mkdir(parents=True, exist_ok=True)
    for stale in (REQUEST, "exit-code", "results.json", "inside.log", "dockerd.log", CONSOLE):
        (run_dir / stale).unlink(missing_ok=True)
    (run_dir / REQUEST).write_text(json.dumps({"args": args}))
    work = _work(stack) / run_dir.name
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    proc: subprocess.Popen[bytes] | None = None
    try:
        overlay, suite, console = work / "overlay.qcow2", work / "suite.img", run_dir / CONSOLE
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", str(img.disk), str(overlay)],
                       check=True, capture_output=True)
        _suite_disk(suite)
        argv = qemu_argv(stack, img, overlay, suite, run_dir, console)
        started = time.monotonic()
        with open(work / "qemu.stderr", "wb") as err:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=err, stderr=err,
                                    preexec_fn=_die_with_parent)
        (work / "qemu.json").write_text(json.dumps({"pid": proc.pid, "start": procs.start_time(proc.pid)}))
        log(f"remote {stack.name}: booted QEMU pid {proc.pid} ({stack.cpus} vCPUs, {stack.memory_mib} MiB, TCG); "
            f"its console: {console}, the suite's log: {run_dir / 'inside.log'}")
        note = _follow(proc, run_dir / "inside.log", timeout, log)
        wall = time.monotonic() - started
        if proc.poll() is None:
            procs.kill_tree(proc.pid)
            proc.wait()
        stderr = (work / "qemu.stderr").read_text(errors="replace").strip()
        if proc.returncode not in (0, None) and not note:
            note = f"QEMU exited {proc.returncode}: {stderr[-600:]}"
        try:
            status = int((run_dir / "exit-code").read_text().strip())
        except (OSError, ValueError):
            status = -1
            note = note or "the machine stopped before the suite said how it ended; see " + str(console)
        return Outcome(status, wall, console, note)
    finally:
        if proc is not None and proc.poll() is None:  # interrupted: the machine goes with the run
            procs.kill_tree(proc.pid)
            proc.wait()
        shutil.rmtree(work, ignore_errors=True)


def _follow(proc: subprocess.Popen[bytes], inside_log: Path, timeout: float, log: Any) -> str:
    """Relay the suite's log lines until QEMU exits; "" or why it was stopped."""
    deadline, pending = time.monotonic() + timeout, ""
    log_file = None

    def relay(everything: bool) -> None:
        nonlocal pending, log_file
        if log_file is None:
            try:
                log_file = open(inside_log, errors="replace")  # noqa: SIM115  (kept open while QEMU runs)
            except OSError:
                return
        pending += log_file.read()
        *lines, pending = pending.split("\n")
        if everything and pending:
            lines, pending = [*lines, pending], ""
        for line in lines:
            log(f"  | {line.rstrip()}")

    while proc.poll() is None:
        relay(False)
        if time.monotonic() > deadline:
            return f"stopped after {timeout:.0f} s: the machine had not powered off"
        time.sleep(2)
    relay(True)
    if log_file is not None:
        log_file.close()
    return ""
