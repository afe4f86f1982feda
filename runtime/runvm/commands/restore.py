"""restore a container from checkpoint images (instead of create + start)"""

from __future__ import annotations

import argparse
from pathlib import Path

from runtime.runvm.commands import create


def add_arguments(p: argparse.ArgumentParser) -> None:
    create.add_arguments(p)
    p.add_argument("--image-path", required=True)
    p.add_argument("--work-path", default=None, help="accepted; CRIU's work files stay in the guest")
    p.add_argument("--detach", "-d", action="store_true")
    p.add_argument("--no-subreaper", action="store_true")
    for flag in ("--tcp-established", "--ext-unix-sk", "--shell-job", "--file-locks", "--auto-dedup",
                 "--lazy-pages"):
        p.add_argument(flag, action="store_true", help="accepted for runc compatibility")
    p.add_argument("--manage-cgroups-mode", default=None)
    p.add_argument("--empty-ns", action="append", default=[])


def run(args: argparse.Namespace, ctx: object) -> int:
    return create.run(args, ctx, restore_images=Path(args.image_path))
