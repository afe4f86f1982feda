"""A kind-vm stack's machine: Debian's kernel and the stack's packages on an ext4 disk image of their own.

Built with debootstrap from Debian's packages only (the stack's list holds the kernel, Docker and the Python
libraries the suite imports), then `mkfs.ext4 -d` turns the tree into a sparse disk image, so nothing is mounted
on this host and the host's packages are never touched. The image is cached by the suite and the package versions
the mirror lists (as a container stack's image is); each run boots a copy-on-write overlay of it and throws the
overlay away, so a run never sees what an earlier one left."""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import paths
from harness.setup import stack_image
from harness.stack_data import THIS_MACHINE, StackData

FORMAT = 1
"""Bumped when what the image holds besides the packages (the first process, its files) changes."""

FIRST_PROCESS = "/sbin/vmparity-init"
INIT = """#!/bin/sh
# vmparity: this machine's first process. The initramfs has mounted /proc, /sys, /dev and /run; the suite and its
# own start-up (harness/vmhost/boot.sh) are on the second disk, mounted where the kernel command line says.
repo=$(sed -n 's/.*vmparity\\.repo=\\([^ ]*\\).*/\\1/p' /proc/cmdline)
if [ -n "$repo" ] && mkdir -p "$repo" && mount -t ext4 /dev/vdb "$repo"; then
  exec /bin/sh "$repo/harness/vmhost/boot.sh" "$repo"
fi
echo "vmparity-init: no suite disk to start (vmparity.repo=$repo)" >&2
echo o > /proc/sysrq-trigger
"""


@dataclass(frozen=True)
class Image:
    directory: Path
    versions: dict[str, str]

    @property
    def disk(self) -> Path:
        return self.directory / "disk.img"

    @property
    def kernel(self) -> Path:
        return self.directory / "vmlinuz"

    @property
    def initrd(self) -> Path:
        return self.directory / "initrd.img"

    @property
    def key(self) -> str:
        return self.directory.name.removeprefix("image-")


def store(stack: StackData) -> Path:
    return paths.STATE / "stacks" / stack.name


def _cached(stack: StackData) -> list[Image]:
    found = []
    for d in sorted(store(stack).glob("image-*")):
        try:
            meta = json.loads((d / "image.json").read_text())
        except (OSError, ValueError):
            continue
        found.append(Image(d, meta["versions"]))
    return found


def _key(stack: StackData, versions: dict[str, str]) -> str:
    return stack_image.key(stack, {**versions, "vmparity-image-format": str(FORMAT),
                                   "size": f"{stack.disk_gib}G"})


def ensure(stack: StackData, log: Any = print) -> tuple[Image, str]:
    """(the machine's image, what was done). Older images of the stack are removed once a newer one exists."""
    try:
        versions = stack_image.mirror_versions(stack)
    except OSError as e:
        cached = _cached(stack)
        if not cached:
            raise SystemExit(f"vmparity: stack {stack.name}: cannot read {stack.mirror} ({e}) and no machine "
                             "image is cached") from e
        newest = max(cached, key=lambda i: (i.directory / "image.json").stat().st_mtime)
        return newest, f"mirror unreachable ({e}); kept {newest.key}"
    directory = store(stack) / f"image-{_key(stack, versions)}"
    if (directory / "image.json").exists():
        done = "cached"
    else:
        log(f"stack {stack.name}: building its machine image (debootstrap {stack.suite}, a few minutes)")
        _build(stack, directory)
        done = "built"
    for old in _cached(stack):
        if old.directory != directory:
            shutil.rmtree(old.directory, ignore_errors=True)
    image = Image(directory, json.loads((directory / "image.json").read_text())["versions"])
    return image, f"{done}: {', '.join(f'{p} {v}' for p, v in image.versions.items())}"


def _furnish(root: Path, stack: StackData) -> None:
    """What makes the tree this stack's host: its name, its first process, a hostname."""
    marker = root / THIS_MACHINE.relative_to("/")
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(stack.name + "\n")
    (root / "etc/hostname").write_text(f"vmparity-{stack.name}\n")
    init = root / FIRST_PROCESS.lstrip("/")
    init.write_text(INIT)
    init.chmod(0o755)


def _one(root: Path, pattern: str) -> Path:
    found = sorted((root / "boot").glob(pattern))
    if not found:
        raise SystemExit(f"vmparity: the machine image has no /boot/{pattern}: does the stack's package list "
                         "hold linux-image-amd64 (and so initramfs-tools)?")
    return found[-1]


def _build(stack: StackData, directory: Path) -> None:
    root = store(stack) / "rootfs.build"
    partial = directory.with_name(directory.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    try:
        versions = stack_image.debootstrap(stack, root)
        if not list((root / "boot").glob("initrd.img-*")):
            subprocess.run(["chroot", str(root), "update-initramfs", "-c", "-k", "all"], check=True,
                           capture_output=True)
        _furnish(root, stack)
        partial.mkdir(parents=True)
        shutil.copy2(_one(root, "vmlinuz-*"), partial / "vmlinuz")
        shutil.copy2(_one(root, "initrd.img-*"), partial / "initrd.img")
        made = subprocess.run(["mkfs.ext4", "-q", "-F", "-L", f"vmparity-{stack.name}", "-d", str(root),
                               str(partial / "disk.img"), f"{stack.disk_gib}G"], capture_output=True, text=True)
        if made.returncode != 0:
            raise SystemExit(f"vmparity: stack {stack.name}: mkfs.ext4 -d failed: {made.stderr.strip()}")
        (partial / "image.json").write_text(json.dumps({"versions": versions, "format": FORMAT}, indent=1))
        shutil.rmtree(directory, ignore_errors=True)
        partial.rename(directory)
    finally:
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(partial, ignore_errors=True)
