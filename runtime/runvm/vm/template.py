"""VM templating: one guest booted to a running agent (no container share mounted, nothing attached), saved
once, then restored for every container. Guest RAM lives in a file the template maps shared; clones map it
private, so their untouched pages stay shared and each VM pays only for what it writes.

Templates live on tmpfs (/dev/shm, when it is big enough). On a disk, the host may drop the file's clean pages
at any time (this one drops idle page cache within a minute or two); the clone that next touches such a page
reads it back, and the page is then charged to that container's memory cgroup: `docker stats` showed tens of MiB
that the workload never took."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import shutil
import stat
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runtime.runvm import cgroups, lockfile, wait
from runtime.runvm.errors import RunvmError
from runtime.runvm.state import proc_start_time
from runtime.runvm.vm import qemu, qmp

ON_DISK = Path("/var/lib/vmparity/templates")
SHM_NEEDED = 2 << 30
"""A tmpfs smaller than this (a container's 64 MiB /dev/shm) cannot hold two templates: they stay on disk."""


def _default_store(shm: Path = Path("/dev/shm")) -> Path:
    """/dev/shm (resolved: /run/shm on some systems) if it is big enough, judged by its size, not its free
    space, so that the choice does not change while templates fill it. If someone other than root has made its
    vmparity directory first, the templates stay on disk rather than in a place they could change."""
    try:
        shm = shm.resolve(strict=True)
        st = os.statvfs(shm)
    except OSError:
        return ON_DISK
    store = shm / "vmparity" / "templates"
    if st.f_blocks * st.f_frsize < SHM_NEEDED:
        return ON_DISK
    try:
        check_root(store)
    except RunvmError:
        return ON_DISK
    return store


PING_TIMEOUT_COLD = 120.0
KEEP_UNUSED_S = 15 * 60
"""A template other than the current one stays this long after its last restore: another runvm install on the
host (a CI checkout beside a working copy) may still be using it."""
KEEP_AT_MOST = 2
"""Templates kept at most, the current one included, however recently the others were used. Each holds all of
its guest's RAM in memory (512 MiB by default)."""


@dataclass(frozen=True)
class Template:
    key: str
    dir: Path

    @property
    def memory(self) -> Path:
        return self.dir / "memory"

    @property
    def state(self) -> Path:
        return self.dir / "state"

    @property
    def meta(self) -> Path:
        return self.dir / "meta.json"


def _qemu_version() -> str:
    path = shutil.which(qemu.QEMU) or qemu.QEMU
    try:
        st = os.stat(path)
        return f"{path}:{st.st_size}:{int(st.st_mtime)}"
    except OSError:
        return path


def key_for(artifacts_key: str, size: qemu.Size, accel: str, cmdline: str) -> str:
    """Everything the saved guest depends on, including the host's cgroup layout it has mounted."""
    layout = json.dumps(cgroups.layout(), sort_keys=True)
    text = "|".join([artifacts_key, size.key(), accel, qemu.LAYOUT_VERSION, _qemu_version(), cmdline, layout])
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def _fingerprint(path: Path) -> dict[str, int]:
    st = os.stat(path)
    return {"size": st.st_size, "ino": st.st_ino, "mtime_ns": st.st_mtime_ns}


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def check_root(root: Path) -> None:
    """Every clone runs the template's RAM, so only root may be able to change what is under it. /dev/shm is
    writable by anyone: a directory someone else made (or a symlink) there must not be trusted. A sticky parent
    (/dev/shm, /tmp) is fine; the store itself must not be writable by anyone else at all."""
    if not root.is_absolute():
        raise RunvmError(f"the template store must be an absolute path (RUNVM_TEMPLATES={root})")
    for p in (root, *root.parents):
        try:
            st = os.lstat(p)
        except FileNotFoundError:
            continue
        open_to_others = st.st_mode & 0o022 and (p == root or not st.st_mode & stat.S_ISVTX)
        if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode) or st.st_uid != 0 or open_to_others:
            raise RunvmError(f"refusing to keep VM templates under {root}: {p} is not a directory that only root "
                             f"can change (owner uid {st.st_uid}, mode {stat.filemode(st.st_mode)}); remove it or "
                             f"set RUNVM_TEMPLATES to a root-owned directory")


def make_root(root: Path) -> None:
    """Create root and its missing parents as 0755 whatever the umask, then check them."""
    check_root(root)
    for p in reversed((root, *root.parents)):
        with contextlib.suppress(FileExistsError):
            os.mkdir(p, 0o755)
            os.chmod(p, 0o755)
    check_root(root)


TEMPLATES = Path(os.environ.get("RUNVM_TEMPLATES") or _default_store())
"""The template store (set here, below check_root, which choosing the default needs)."""


def find(key: str) -> tuple[Template | None, str]:
    """The usable template for key, or None and why not (logged by the caller: the cold path is chosen)."""
    try:
        check_root(TEMPLATES)
    except RunvmError as e:
        return None, str(e)
    t = Template(key, TEMPLATES / key)
    if not t.dir.is_dir():
        return None, f"no template {key} yet"
    try:
        meta = json.loads(t.meta.read_text())
        if _fingerprint(t.memory) != meta["memory"] or _fingerprint(t.state) != meta["state"]:
            return None, f"template {key} files changed since it was saved"
        if _digest(t.state) != meta["state_sha256"]:
            return None, f"template {key} device state is corrupt (checksum mismatch)"
    except FileNotFoundError as e:
        return None, f"template {key} is incomplete ({os.path.basename(e.filename or '?')} missing)"
    except (ValueError, KeyError, OSError) as e:
        return None, f"template {key} metadata unreadable ({e})"
    return t, "ok"


def mark_used(t: Template) -> None:
    """meta.json's mtime is the template's last restore: what pruning goes by."""
    with contextlib.suppress(OSError):
        os.utime(t.meta)


def _last_used(d: Path) -> float:
    for p in (d / "meta.json", d):
        with contextlib.suppress(OSError):
            return p.stat().st_mtime
    return 0.0


def prune(current: str, root: Path | None = None, now: float | None = None) -> list[str]:
    """Remove templates nothing will restore from any more, and what dead builders left behind; returns the
    names removed. Keys change with every agent, kernel or QEMU update, so without this they pile up."""
    root = root or TEMPLATES
    now = time.time() if now is None else now
    try:
        entries = [e for e in root.iterdir() if e.is_dir()]
    except FileNotFoundError:
        return []
    others = sorted(((_last_used(e), e) for e in entries if not e.name.startswith(".") and e.name != current),
                    reverse=True)
    stale = [d for i, (used, d) in enumerate(others) if now - used > KEEP_UNUSED_S or i >= KEEP_AT_MOST - 1]
    removed = [d.name for d in stale if _retire(d, "pruned", now)]
    if root == TEMPLATES != ON_DISK and not os.environ.get("RUNVM_TEMPLATES") and ON_DISK.is_dir():
        removed += prune(current, ON_DISK, now)  # where templates were kept before: the same rules, then it goes
        lockfile.remove_unused(ON_DISK, lambda key: (ON_DISK / key).exists())
        with contextlib.suppress(OSError):
            ON_DISK.rmdir()
            removed.append(str(ON_DISK))
    for d in entries:
        pid = d.name.rsplit("-", 1)[-1]
        dead_builder = d.name.startswith(".build-") and pid.isdigit() and proc_start_time(int(pid)) is None
        if d.name.startswith((".bad-", ".pruned-")) or dead_builder:
            shutil.rmtree(d, ignore_errors=True)
            removed.append(d.name)
    # a lock file goes with its template, once no builder holds it
    lockfile.remove_unused(root, lambda key: (root / key).exists()
                           or now - _last_used(root / f".{key}.lock") <= KEEP_UNUSED_S)
    return removed


def _retire(d: Path, why: str, now: float) -> bool:
    """Rename out of find()'s sight first (atomic), then delete (the slow part)."""
    target = d.parent / f".{why}-{d.name}-{int(now * 1000)}"
    try:
        os.replace(d, target)
    except OSError:
        return False
    shutil.rmtree(target, ignore_errors=True)
    return True


def discard(key: str) -> None:
    """Move a broken template out of the way so the next create rebuilds it (the caller logs why)."""
    _retire(TEMPLATES / key, "bad", time.time())


async def _ping(sock: Path, timeout: float, warm: dict[str, Any] | None = None) -> None:
    """Wait for the agent; with `warm`, also have it do the per-container work that can be done in advance."""
    from runtime.runvm.shim.link import Link

    async def attempt(left: float) -> None:
        reader, writer = await asyncio.open_unix_connection(str(sock))
        link = Link(reader, writer, name="agent")
        try:
            await link.request({"op": "ping"}, timeout=max(1.0, left))
            if warm is not None:
                await link.request({"op": "warm", **warm}, timeout=120)
        finally:
            link.close()

    await wait.until_async(attempt, "the template VM's agent to answer", timeout, interval=0.2)


async def _boot_and_save(tmp: Path, key: str, base: qemu.VMConfig) -> None:
    """Into tmp: the guest booted to its agent and warmed, then its RAM file (holes filled) and device state."""
    tmp.mkdir()
    (tmp / "share").mkdir()
    cfg = qemu.VMConfig(**{**base.__dict__, "share_dir": tmp / "share", "agent_sock": tmp / "agent.sock",
                           "qmp_sock": tmp / "qmp.sock", "ram_file": tmp / "memory", "ram_shared": True,
                           "incoming": False, "tap_fd": None, "console_log": tmp / "console.log"})
    proc = qemu.launch(cfg, tmp / "qemu.log")
    client = None
    try:
        client = await qmp.connect(cfg.qmp_sock, alive=lambda: proc.poll() is None)
        await _ping(cfg.agent_sock, PING_TIMEOUT_COLD, warm={"cgroup_layout": cgroups.layout()})
        await qmp.save(client, tmp / "state")
    finally:
        if client is not None:  # QMP serves one client: stop's own `quit` needs it free
            with contextlib.suppress(Exception):
                await client.disconnect()
        qemu.stop(proc, cfg.qmp_sock)
    _fill_holes(tmp / "memory")
    meta = {"key": key, "memory": _fingerprint(tmp / "memory"), "state": _fingerprint(tmp / "state"),
            "state_sha256": _digest(tmp / "state"), "created": time.time(), "size": base.size.key()}
    for junk in ("share", "agent.sock", "qmp.sock"):
        p = tmp / junk
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
    (tmp / "meta.json").write_text(json.dumps(meta))


async def build(key: str, base: qemu.VMConfig) -> Template:
    """Boot, wait for the agent, save. Concurrent builders serialise on a lock; the loser reuses the result."""
    make_root(TEMPLATES)
    lock_fd = await asyncio.get_running_loop().run_in_executor(None, lockfile.take, TEMPLATES / f".{key}.lock")
    assert lock_fd is not None  # blocking
    try:
        found, _ = find(key)
        if found:
            return found
        tmp = TEMPLATES / f".build-{key}-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            await _boot_and_save(tmp, key, base)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)  # on tmpfs, a failed build would keep up to the guest's RAM
            raise
        final = TEMPLATES / key
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        return Template(key, final)
    finally:
        os.close(lock_fd)


def _fill_holes(memory: Path) -> None:
    """Give every page of guest RAM that the template never touched a page of its own, now, charged to the
    builder. A clone's first write to a hole would otherwise add that page to the template file (tmpfs keeps it
    for good) and charge it to the clone's cgroup: the first container to allocate memory would pay twice."""
    fd = os.open(memory, os.O_RDWR | os.O_CLOEXEC)
    try:
        os.posix_fallocate(fd, 0, os.fstat(fd).st_size)
    finally:
        os.close(fd)


def build_in_background(argv: list[str]) -> None:
    """Start a detached builder (no stdio, own session) and return at once. It leaves the container's cgroup
    itself before building (commands/template.py), as every builder does."""
    subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                     start_new_session=True, close_fds=True)
