"""The on-disk cache of guest artifacts: content-keyed entries, one builder at a time, atomic publish.

Entries are directories named `<kind>-<key>`; a directory only appears by rename() once it is complete,
so existence means usable and readers never need the lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

DEFAULT_ROOT = Path("/var/lib/vmparity/guest")
KEEP = 2


def root() -> Path:
    """The cache directory; VMPARITY_GUEST_CACHE overrides it (tests, unprivileged experiments)."""
    return Path(os.environ.get("VMPARITY_GUEST_CACHE", str(DEFAULT_ROOT)))


def digest(parts: Iterable[bytes | str | Path]) -> str:
    """sha256 over labelled parts; a Path contributes its name and content, so renames count too."""
    h = hashlib.sha256()
    for part in parts:
        if isinstance(part, Path):
            data = part.read_bytes()
            h.update(f"file {part.name} {len(data)}\n".encode())
            h.update(data)
        else:
            data = part.encode() if isinstance(part, str) else part
            h.update(f"data {len(data)}\n".encode())
            h.update(data)
    return h.hexdigest()


def entry(base: Path, kind: str, key: str) -> Path:
    return base / f"{kind}-{key[:24]}"


def touch(path: Path) -> None:
    """Mark an entry as just used: prune() keeps the most recently used ones."""
    os.utime(path)


@contextlib.contextmanager
def locked(base: Path) -> Iterator[None]:
    """Serialise builders across processes; the lock dies with its holder, so it never goes stale."""
    base.mkdir(parents=True, exist_ok=True)
    with open(base / ".lock", "a+b") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


@contextlib.contextmanager
def staging(base: Path, kind: str) -> Iterator[Path]:
    """A scratch directory on the cache's file system (so publish() can rename), removed afterwards."""
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{kind}-", dir=base))
    try:
        yield tmp
    finally:
        remove_tree(tmp)


def publish(built: Path, dest: Path) -> None:
    """Move a finished build into place atomically; a racing identical build simply loses."""
    try:
        os.rename(built, dest)
    except OSError:
        if not dest.is_dir():
            raise


def prune(base: Path, kind: str, keep_names: Iterable[str], keep: int = KEEP) -> list[str]:
    """Drop all but the `keep` newest entries of a kind (never those named), and leftover scratch dirs.

    Call with the lock held: then any `.tmp-*` directory belongs to a builder that died.
    """
    removed = []
    wanted = set(keep_names)
    for tmp in base.glob(".tmp-*"):
        remove_tree(tmp)
    entries = sorted(base.glob(f"{kind}-*"), key=lambda p: p.stat().st_mtime, reverse=True)
    survivors = [p for p in entries if p.name in wanted]
    for p in entries:
        if p.name in wanted:
            continue
        if len(survivors) < keep:
            survivors.append(p)
            continue
        remove_tree(p)
        removed.append(p.name)
    return removed


def remove_tree(path: Path) -> None:
    """rmtree that first detaches anything still mounted inside (debootstrap mounts /proc in its target)."""
    if path.exists():
        unmount_under(path)
        shutil.rmtree(path, ignore_errors=True)


def unmount_under(path: Path) -> None:
    """Lazily unmount everything below path, deepest first; raise if something stays mounted."""
    prefix = str(path.resolve()) + "/"
    inside = [m for m in _mount_points() if m.startswith(prefix)]
    for target in sorted(inside, key=len, reverse=True):
        subprocess.run(["umount", "-l", target], capture_output=True, check=False)
    left = [m for m in _mount_points() if m.startswith(prefix)]
    if left:
        raise RuntimeError(f"cannot unmount {', '.join(left)}; not touching {path}")


def _mount_points() -> list[str]:
    with open("/proc/self/mounts") as f:
        return [line.split()[1].replace("\\040", " ") for line in f]
