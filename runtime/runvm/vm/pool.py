"""The pool of spare VMs (`runvm --pool`): VMs restored from the template ahead of time, so that a create skips
QEMU's start, the restore and the guest's wake-up. Each spare is held by its own keeper process (keeper.py) and
lives in a slot directory:

    /run/runvm-pool/<template key>-tb<N>/<slot>/   spare.json  claim.sock  agent.sock  qmp.sock  share/  qemu.log

A create claims a spare by connecting to claim.sock; the keeper passes it the agent channel and exits. The slot
then belongs to the container until `runvm delete` removes it. Everything here is host-side bookkeeping; nothing
in it decides a container's behaviour, which is the same pooled or not.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runtime.runvm import lockfile, wait
from runtime.runvm.state import proc_start_time

POOL_DIR = Path(os.environ.get("RUNVM_POOL_DIR", "/run/runvm-pool"))
POOL_CGROUP = "/runvm-pool"
POOL_CPU_SHARES = 2
"""Making a spare is background work: with the fewest cpu.shares it yields the CPU to the start that claimed the
last spare, on a host with few cores. A claimed VM moves to its container's cgroup and weight."""
REPO = str(Path(__file__).resolve().parents[3])
SPARES = 1
"""Spares kept per pool key. One covers a sequence of starts; each claim starts a replacement at once."""
CLAIM_TIMEOUT_S = 2.0
STARTING_S = 30.0
"""A slot with no keeper information after this long is a keeper that died starting."""
IDLE_S = 600.0
"""An unclaimed spare ends after this long: its template may be stale, and it costs a VM's memory."""


@dataclass
class Claimed:
    slot: Path
    qemu_pid: int
    qemu_start: int
    agent: socket.socket
    unread: bytes


@dataclass
class Slot:
    dir: Path
    info: dict[str, Any]

    def _alive(self, who: str) -> bool:
        """Whether the keeper, QEMU or claimant the slot names is that very process still (pids get reused)."""
        pid, start = self.info.get(who), self.info.get(f"{who}_start")
        return bool(pid) and proc_start_time(int(pid or 0)) == start

    @property
    def keeper_alive(self) -> bool:
        return self._alive("keeper")

    @property
    def qemu_alive(self) -> bool:
        return self._alive("qemu")

    @property
    def claimed(self) -> bool:
        return bool(self.info.get("claimed_by"))

    @property
    def owner_alive(self) -> bool:
        return self._alive("claimed_by")


def read_info(slot: Path) -> dict[str, Any]:
    """The slot's spare.json; {} while its keeper has written nothing (or the slot is gone)."""
    try:
        return json.loads((slot / "spare.json").read_text())
    except (OSError, ValueError):
        return {}


def slots(pool_key: str | None = None) -> list[Slot]:
    return [Slot(d, read_info(d)) for d in sorted(POOL_DIR.glob(f"{pool_key or '*'}/*")) if d.is_dir()]


def write_info(slot: Path, **changes: Any) -> None:
    path = slot / "spare.json"
    info = read_info(slot)
    info.update(changes)
    tmp = slot / ".spare.json.tmp"
    tmp.write_text(json.dumps(info))
    os.replace(tmp, path)


def claim(pool_key: str, owner_pid: int) -> Claimed | None:
    """A ready spare, or None (the caller restores as usual). Two creates racing for one spare: the keeper
    serves one and closes its socket on the other, which tries the next spare."""
    for s in slots(pool_key):
        if s.claimed or not (s.dir / "claim.sock").exists():
            continue
        got = _claim_one(s.dir, owner_pid)
        if got is not None:
            return got
    return None


def _claim_one(slot: Path, owner_pid: int) -> Claimed | None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(CLAIM_TIMEOUT_S)
    fds: list[int] = []
    try:
        sock.connect(str(slot / "claim.sock"))
        sock.sendall(json.dumps({"pid": owner_pid}).encode() + b"\n")
        msg, fds, _flags, _addr = socket.recv_fds(sock, 1 << 16, 1, socket.MSG_CMSG_CLOEXEC)
        if not msg or len(fds) != 1:
            return None
        reply = json.loads(msg)
        got = Claimed(slot, int(reply["qemu"]), int(reply["qemu_start"]), socket.socket(fileno=fds[0]),
                      base64.b64decode(reply.get("unread") or ""))
        fds = []  # the socket object owns it now
        try:
            sock.sendall(b"k")  # the keeper exits without killing the VM only after this
        except OSError:
            got.agent.close()
            return None
        return got
    except (OSError, ValueError, KeyError, TypeError):  # TypeError: a VM that died during the hand-over
        return None
    finally:
        for fd in fds:
            os.close(fd)
        sock.close()


def refill(pool_key: str, argv: list[str], mnt_ns: int | None = None) -> None:
    """Start keepers (detached: own session, no stdio) until the key has SPARES unclaimed slots. mnt_ns: the
    mount namespace to start them in (a vm-shim's own is private to its container)."""
    _private_dir(POOL_DIR)
    keydir = POOL_DIR / pool_key
    lock_fd = lockfile.take(POOL_DIR / f".{pool_key}.lock")
    assert lock_fd is not None  # blocking
    try:
        now = time.time()
        waiting = [s for s in slots(pool_key) if not s.claimed
                   and (s.keeper_alive or (not s.info and now - _mtime(s.dir) < STARTING_S))]
        for _ in range(SPARES - len(waiting)):
            slot = keydir / os.urandom(6).hex()  # not uuid: it imports platform (~4 ms per create)
            keydir.mkdir(mode=0o700, exist_ok=True)  # again: prune removes empty key directories without the lock
            slot.mkdir(mode=0o700)
            _spawn_detached([*argv, str(slot)], mnt_ns)
    finally:
        os.close(lock_fd)


def _private_dir(d: Path) -> None:
    """The pool's sockets give a root-owned VM (QMP, the agent, the claim): only root may reach them."""
    d.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = d.stat()
    if st.st_uid != os.geteuid():
        raise OSError(f"{d} belongs to uid {st.st_uid}, not to us")
    if st.st_mode & 0o077:
        os.chmod(d, 0o700)


def _spawn_detached(argv: list[str], mnt_ns: int | None) -> None:
    """Through an intermediate child that exits at once, so the keeper is not our child: a vm-shim must not
    count, wait for or be blamed for a spare that will serve another container."""
    pid = os.fork()
    if pid == 0:
        try:
            # the keeper's interpreter start-up (~14 MiB) must not be charged to the container whose create
            # started it: v1 leaves a charge where it was made, and keeper.main moves it to runvm-pool only later
            from runtime.runvm import cgroups

            cgroups.leave()
            if mnt_ns is not None:
                from runtime.runvm.sys import CLONE_NEWNS, setns

                setns(mnt_ns, CLONE_NEWNS)
            subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True, close_fds=True, cwd=REPO)
        finally:
            os._exit(0)
    os.waitpid(pid, 0)


def remove_slot(slot: Path) -> None:
    """Delete a slot without ever entering a mount. In the host's mount namespace the container's binds under
    share/ do not exist, but this is also safe where they do: mount points (and other filesystems) are left."""
    try:
        top = os.lstat(slot)
    except FileNotFoundError:
        return
    mounted = _mount_points()
    for root, dirs, files, rootfd in os.fwalk(slot, topdown=True):
        keep = [d for d in dirs if os.path.join(root, d) in mounted]
        dirs[:] = [d for d in dirs if d not in keep and _same_dev(d, rootfd, top.st_dev)]
        for name in files:
            with contextlib.suppress(OSError):
                os.unlink(name, dir_fd=rootfd)
    for root, dirs, _files in os.walk(slot, topdown=False):
        for d in dirs:
            path = os.path.join(root, d)
            if path not in mounted:
                with contextlib.suppress(OSError):
                    os.rmdir(path)
    with contextlib.suppress(OSError):
        os.rmdir(slot)


def _same_dev(name: str, dir_fd: int, dev: int) -> bool:
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and st.st_dev == dev


def _mount_points() -> set[str]:
    points = set()
    with contextlib.suppress(OSError), open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            if len(fields) > 4:
                points.add(fields[4].encode().decode("unicode_escape"))
    return points


def _kill_keeper(pid: int | None, start: int | None) -> None:
    """A keeper is no VM: SIGKILL (its spare's agent then powers the guest off; prune stops what remains)."""
    if pid and start and proc_start_time(int(pid)) == start:
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(pid), signal.SIGKILL)


def _stop_vm(slot: Path, pid: int | None, start: int | None) -> None:
    """A spare's QEMU, ended stop.py's way; start guards against a reused pid (None: found by command line)."""
    from runtime.runvm.vm import stop

    if pid:
        stop.stop(int(pid), slot / "qmp.sock", start=start)


def prune(drain: bool = False, grace_s: float = STARTING_S) -> list[str]:
    """Remove what no one holds: unclaimed slots whose keeper is gone (their VM killed), claimed slots whose
    owner is gone. With drain, also every unclaimed spare (keeper and VM killed). A slot younger than grace_s
    with no keeper information yet is a keeper still starting."""
    removed = []
    now = time.time()
    for s in slots():
        if drain and not s.info and now - _mtime(s.dir) < grace_s:
            s = _started(s, grace_s)  # a keeper still starting: wait until it says what to kill
        if not s.claimed:
            if drain:
                _kill_keeper(s.info.get("keeper"), s.info.get("keeper_start"))
                _wait_gone(s, qemu=False)
            elif s.keeper_alive or (not s.info and now - _mtime(s.dir) < grace_s):
                continue
            # The keeper is gone. It may have handed its VM over just before: it records the claimant before it
            # passes the channel, so a fresh read tells a VM that now belongs to a container from a lost spare.
            s = Slot(s.dir, read_info(s.dir) or s.info)
        if s.claimed and s.owner_alive:
            continue
        if s.info.get("qemu"):
            if s.info.get("qemu_start"):
                _stop_vm(s.dir, s.info["qemu"], s.info["qemu_start"])
        else:  # a keeper killed between QEMU's launch and its first note: find it by slot
            for pid in qemus_naming(s.dir):
                _stop_vm(s.dir, pid, None)
        _wait_gone(s)
        remove_slot(s.dir)
        removed.append(str(s.dir))
    for d in POOL_DIR.glob("*"):
        if d.is_dir() and not any(d.iterdir()):
            with contextlib.suppress(OSError):
                d.rmdir()
    lockfile.remove_unused(POOL_DIR, lambda key: (POOL_DIR / key).exists())  # a key's lock goes with its last slot
    if not slots():
        _remove_cgroup(wait_s=3.0 if removed else 0.0)  # an empty pool leaves no cgroup behind either
    return removed


def _remove_cgroup(wait_s: float) -> None:
    """A just-killed VM or keeper leaves its cgroup only once reaped: retry the rmdir for a moment."""
    from runtime.runvm import cgroups

    def removed() -> bool:
        cgroups.remove(POOL_CGROUP, wait_s=0.2)
        return not cgroups.exists(POOL_CGROUP)

    wait.poll(removed, wait_s, interval=0.05)


def qemus_naming(slot: Path) -> list[int]:
    """QEMU processes whose command line names the slot (its sockets and share are in it): a spare's, whatever
    its keeper managed to record."""
    import psutil  # only here (~20 ms to import): prune runs in keepers and commands, never in a create

    needle = str(slot) + "/"
    found = []
    for p in psutil.process_iter(["cmdline"]):
        argv = p.info["cmdline"] or [""]
        if "qemu-system" in os.path.basename(argv[0]) and any(needle in a for a in argv[1:]):
            found.append(p.pid)
    return found


def _started(s: Slot, timeout: float) -> Slot:
    """The slot once its keeper has noted its QEMU (or s as it was, if the slot goes or the keeper is slow)."""
    def noted() -> Slot | None:
        info = read_info(s.dir)
        return Slot(s.dir, info) if info.get("qemu") else None

    return wait.poll(lambda: noted() or (None if s.dir.exists() else s), timeout, interval=0.05) or s


def _mtime(d: Path) -> float:
    try:
        return d.stat().st_mtime
    except OSError:
        return 0.0


def _wait_gone(s: Slot, qemu: bool = True, timeout: float = 5.0) -> None:
    """Until the slot's keeper (and, with qemu, its VM) has ended."""
    wait.poll(lambda: not (s.keeper_alive or (qemu and s.qemu_alive)), timeout)


def owned_pids(s: Slot) -> list[int]:
    """A spare's live keeper and QEMU while no container has claimed it: processes of no container."""
    if s.claimed:
        return []
    return [int(s.info[who]) for who in ("keeper", "qemu")
            if s.info.get(who) and proc_start_time(int(s.info[who])) == s.info.get(f"{who}_start")]


def pids() -> set[int]:
    """Processes the pool owns right now (keepers and unclaimed VMs): not leaks of any container."""
    return {pid for s in slots() for pid in owned_pids(s)}


def keeper_argv(tb_mib: int | None) -> list[str]:
    argv = [sys.executable, "-m", "runtime.runvm.vm.keeper"]
    return [*argv, str(tb_mib or 0)]
