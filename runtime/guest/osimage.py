"""The guest's read-only OS image: a minimal Debian with Python and criu for the agent, as raw ext4.

It is a block device rather than a 9p share because QEMU 7.2 refuses to snapshot a VM with 9p mounted,
and read-only so that every VM (and every clone of a snapshot) can share one file.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

from runtime.guest.commands import run

SOURCES = Path("/etc/apt/sources.list.d/debian.sources")
FALLBACK_MIRROR = "http://deb.debian.org/debian"
SUITE = "bookworm"
LABEL = "vmparity-os"
MOUNT_POINTS = ("run", "tmp", "proc", "sys", "dev", "mnt")
# Nothing in the guest reads these; they would only make the image bigger.
STRIP = (
    "usr/share/doc",
    "usr/share/man",
    "usr/share/info",
    "usr/share/locale",
    "usr/share/lintian",
    "usr/share/bug",
    "var/lib/apt/lists",
    "var/cache/apt",
    "var/cache/ldconfig",
    "var/log",
)
# Host details debootstrap copies in; the agent writes the container's own.
HOST_FILES = ("etc/hostname", "etc/resolv.conf")
BLOCK = 4096
INODE_SIZE = 256


def mirror(sources: Path = SOURCES) -> str:
    """The first URIs of the host's deb822 sources (a local mirror or proxy, if configured)."""
    try:
        for line in sources.read_text().splitlines():
            key, sep, value = line.partition(":")
            if sep and key.strip() == "URIs" and value.split():
                return value.split()[0]
    except OSError:
        pass
    return FALLBACK_MIRROR


def packages(recipe: Path) -> list[str]:
    return [w for raw in recipe.read_text().splitlines() if (w := raw.split("#", 1)[0].strip())]


def bootstrap(target: Path, include: list[str], source: str) -> None:
    """debootstrap the minimal base plus the recipe's packages into target."""
    run(["debootstrap", "--variant=minbase", f"--include={','.join(include)}", SUITE, str(target), source])


def slim(root: Path) -> None:
    """Strip what the guest never reads and leave empty mount points for /init."""
    for rel in STRIP:
        path = root / rel
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
            path.mkdir()
    for rel in HOST_FILES:
        (root / rel).unlink(missing_ok=True)
    for name in MOUNT_POINTS:
        path = root / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        path.mkdir(mode=0o1777 if name == "tmp" else 0o755)
        os.chmod(path, 0o1777 if name == "tmp" else 0o755)


def python_version(root: Path) -> str:
    """The guest's Python as 'X.Y', read from the tree (e.g. usr/bin/python3 -> python3.11)."""
    link = os.readlink(root / "usr/bin/python3")
    return Path(link).name.removeprefix("python")


def footprint(root: Path) -> tuple[int, int]:
    """(bytes of data blocks, number of inodes) the tree needs on a 4 KiB-block ext4."""
    blocks = inodes = 0
    for dirpath, dirnames, filenames in os.walk(root):
        inodes += 1
        blocks += 1
        for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            st = os.lstat(os.path.join(dirpath, name))
            inodes += 1
            blocks += -(-st.st_size // BLOCK)
    return blocks * BLOCK, inodes


def pack(root: Path, image: Path, seed: str) -> int:
    """Write root into a fresh raw ext4 image just big enough; returns its size in bytes.

    No journal and no reserved or resize blocks: it is only ever mounted read-only. The UUID derives
    from the cache key, so rebuilding the same recipe gives the same identity.
    """
    data, inodes = footprint(root)
    inodes += 1024
    fs_uuid = str(uuid.UUID(seed[:32]))
    size = data + data // 10 + inodes * INODE_SIZE + 16 * 2**20
    for _attempt in range(4):
        size = -(-size // 2**20) * 2**20
        image.unlink(missing_ok=True)
        with open(image, "wb") as f:
            f.truncate(size)
        try:
            run([
                "mke2fs", "-q", "-F", "-t", "ext4", "-d", str(root), "-L", LABEL,
                "-O", "^has_journal,^resize_inode", "-m", "0", "-b", str(BLOCK),
                "-I", str(INODE_SIZE), "-N", str(inodes), "-U", fs_uuid,
                "-E", f"hash_seed={fs_uuid},root_owner=0:0", str(image),
            ])
            return size
        except RuntimeError as e:
            if "No space" not in str(e) and "Could not allocate" not in str(e):
                raise
            size += size // 4
    raise RuntimeError(f"mke2fs could not fit {root} into {size} bytes")
