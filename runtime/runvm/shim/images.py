"""CRIU images travel through the 9p share: the host's image directory is bound into it for the duration."""

from __future__ import annotations

import contextlib
from pathlib import Path

from runtime.runvm.shim.constants import IMAGES_DIR
from runtime.runvm.sys import MS_BIND, mount, umount


def bind(share: Path, images: Path) -> None:
    images.mkdir(parents=True, exist_ok=True)
    target = share / IMAGES_DIR
    target.mkdir(exist_ok=True)
    mount(str(images), str(target), None, MS_BIND)


def unbind(share: Path) -> None:
    with contextlib.suppress(OSError):
        umount(str(share / IMAGES_DIR))
