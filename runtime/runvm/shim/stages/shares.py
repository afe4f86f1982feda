"""Stage: the 9p share the guest mounts: the rootfs and the spec's bind sources, bound under one directory."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runtime.runvm import share


@dataclass(frozen=True)
class Shares:
    mounts: list[dict[str, Any]]
    """The spec's mounts as the guest must make them (sources rewritten into the share)."""
    shares: dict[str, str]
    """Share-relative paths the agent binds, by mount destination."""


def populate(share_dir: Path, rootfs: Path, mounts: list[dict[str, Any]], trees: list[int] | None) -> Shares:
    """trees: a pooled VM's sources, cloned from the daemon's mount namespace (closed here, used or not)."""
    share.prepare(share_dir)
    try:
        got_mounts, got_shares = share.populate(share_dir, rootfs, mounts, trees=trees)
        return Shares(got_mounts, got_shares)
    finally:
        for fd in trees or []:
            os.close(fd)
