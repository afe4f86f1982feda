"""runvm's own: build, show, prune or remove the VM template that containers are restored from"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys

from runtime.runvm.vm import template


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=["build", "status", "prune", "remove"])
    p.add_argument("--quiet", action="store_true")


def _base() -> tuple[object, str]:
    from runtime.runvm.vm import accel, guest, qemu

    art = guest.artifacts()
    acc, _why = accel.choose()
    cfg = qemu.VMConfig(kernel=art.kernel, initrd=art.initrd, osimage=art.osimage, cmdline=guest.cmdline(acc),
                        share_dir=template.TEMPLATES, agent_sock=template.TEMPLATES, qmp_sock=template.TEMPLATES,
                        accel=acc)
    return cfg, template.key_for(art.key, cfg.size, acc, cfg.cmdline)


def _leave_containers_cgroup() -> None:
    """A builder started by a container's vm-shim would charge the template's RAM (on tmpfs: for good) to that
    container, and hit its memory limit. The root cgroups are no container's; the builder's QEMU follows."""
    import os

    from runtime.runvm import cgroups

    cgroups.place("/", os.getpid(), {})


def run(args: argparse.Namespace, ctx: object) -> int:
    cfg, key = _base()
    if args.action == "build":
        found, why = template.find(key)
        if found is None:
            _leave_containers_cgroup()
            found = asyncio.run(template.build(key, cfg))  # type: ignore[arg-type]
            why = "built"
        pruned = template.prune(key)
        if not args.quiet:
            print(json.dumps({"key": key, "dir": str(found.dir), "status": why, "pruned": pruned}))
        return 0
    if args.action == "prune":
        print(json.dumps({"key": key, "pruned": template.prune(key)}))
        return 0
    if args.action == "status":
        found, why = template.find(key)
        json.dump({"key": key, "usable": found is not None, "why": why}, sys.stdout)
        sys.stdout.write("\n")
        return 0 if found else 1
    shutil.rmtree(template.TEMPLATES / key, ignore_errors=True)
    return 0
