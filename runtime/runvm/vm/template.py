"""VM templating: one guest booted to a running agent (no container share mounted, nothing attached), saved
once, then restored for every container. Guest RAM lives in a file the template maps shared; clones map it
private, so their untouched pages stay shared in the page cache and each VM pays only for what it writes."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runtime.runvm import cgroups
from runtime.runvm.errors import RunvmError
from runtime.runvm.state import proc_start_time
from runtime.runvm.vm import qemu, qmp

TEMPLATES = Path(os.environ.get("RUNVM_TEMPLATES", "/var/lib/vmparity/templates"))
PING_TIMEOUT_COLD = 120.0
KEEP_UNUSED_S = 15 * 60
"""A template other than the current one stays this long after its last restore: another runvm install on the
host (a CI checkout beside a working copy) may still be using it. Each one is a few hundred MB of disk."""
KEEP_AT_MOST = 3
"""Templates kept at most, the current one included, however recently the others were used."""


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


def find(key: str) -> tuple[Template | None, str]:
    """The usable template for key, or None and why not (logged by the caller: the cold path is chosen)."""
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
    for d in entries:
        pid = d.name.rsplit("-", 1)[-1]
        dead_builder = d.name.startswith(".build-") and pid.isdigit() and proc_start_time(int(pid)) is None
        if d.name.startswith((".bad-", ".pruned-")) or dead_builder:
            shutil.rmtree(d, ignore_errors=True)
            removed.append(d.name)
    _prune_locks(root, now)
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


def _prune_locks(root: Path, now: float) -> None:
    """A lock file goes with its template, taken (non-blocking) so that no builder holds it."""
    for lock in root.glob(".*.lock"):
        key = lock.name[1:-len(".lock")]
        if (root / key).exists() or now - _last_used(lock) <= KEEP_UNUSED_S:
            continue
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            lock.unlink(missing_ok=True)
        except OSError:
            pass
        finally:
            os.close(fd)


def discard(key: str) -> None:
    """Move a broken template out of the way so the next create rebuilds it (the caller logs why)."""
    _retire(TEMPLATES / key, "bad", time.time())


async def _ping(sock: Path, timeout: float, warm: dict[str, Any] | None = None) -> None:
    """Wait for the agent; with `warm`, also have it do the per-container work that can be done in advance."""
    from runtime.runvm.shim.link import Link

    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            reader, writer = await asyncio.open_unix_connection(str(sock))
            link = Link(reader, writer, name="agent")
            try:
                await link.request({"op": "ping"}, timeout=max(1.0, deadline - asyncio.get_running_loop().time()))
                if warm is not None:
                    await link.request({"op": "warm", **warm}, timeout=120)
                return
            finally:
                link.close()
        except (OSError, RunvmError):
            if asyncio.get_running_loop().time() > deadline:
                raise RunvmError(f"the template VM's agent did not answer within {timeout}s") from None
            await asyncio.sleep(0.2)


async def build(key: str, base: qemu.VMConfig) -> Template:
    """Boot, wait for the agent, save. Concurrent builders serialise on a lock; the loser reuses the result."""
    TEMPLATES.mkdir(parents=True, exist_ok=True)
    lock_fd = os.open(TEMPLATES / f".{key}.lock", os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600)
    try:
        await asyncio.get_running_loop().run_in_executor(None, fcntl.flock, lock_fd, fcntl.LOCK_EX)
        found, _ = find(key)
        if found:
            return found
        tmp = TEMPLATES / f".build-{key}-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        (tmp / "share").mkdir()
        cfg = qemu.VMConfig(**{**base.__dict__, "share_dir": tmp / "share", "agent_sock": tmp / "agent.sock",
                               "qmp_sock": tmp / "qmp.sock", "ram_file": tmp / "memory", "ram_shared": True,
                               "incoming": False, "tap_fd": None, "console_log": tmp / "console.log"})
        proc = qemu.launch(cfg, tmp / "qemu.log")
        try:
            client = await qmp.connect(cfg.qmp_sock, alive=lambda: proc.poll() is None)
            await _ping(cfg.agent_sock, PING_TIMEOUT_COLD, warm={"cgroup_layout": cgroups.layout()})
            await qmp.save(client, tmp / "state")
            with contextlib.suppress(Exception):
                await client.execute("quit")
            with contextlib.suppress(Exception):
                await client.disconnect()
            await asyncio.get_running_loop().run_in_executor(None, proc.wait, 10)
        except BaseException:
            qemu.kill(proc)
            raise
        finally:
            qemu.kill(proc)
        meta = {"key": key, "memory": _fingerprint(tmp / "memory"), "state": _fingerprint(tmp / "state"),
                "state_sha256": _digest(tmp / "state"), "created": time.time(), "size": base.size.key()}
        for junk in ("share", "agent.sock", "qmp.sock"):
            p = tmp / junk
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)
        (tmp / "meta.json").write_text(json.dumps(meta))
        final = TEMPLATES / key
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        return Template(key, final)
    finally:
        os.close(lock_fd)


def build_in_background(argv: list[str]) -> None:
    """Start a detached builder (no stdio, own session, out of the container's cgroup) and return at once."""
    subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                     start_new_session=True, close_fds=True)
