"""create a container: its VM is started and the process waits for `start`"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from runtime.runvm import cgroups, sysctls
from runtime.runvm import spec as specmod
from runtime.runvm.commands._common import wait_ready, write_pid_file
from runtime.runvm.errors import RunvmError
from runtime.runvm.state import check_id

CREATE_TIMEOUT = 240.0


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--bundle", "-b", default=".", help="path to the OCI bundle")
    p.add_argument("--pid-file", default=None, help="where to write the container's pid")
    p.add_argument("--console-socket", default=None, help="unix socket that receives the pty master (-t)")
    p.add_argument("--no-pivot", action="store_true", help="accepted (DOCKER_RAMDISK); the guest always pivots")
    p.add_argument("--no-new-keyring", action="store_true")
    p.add_argument("--preserve-fds", type=int, default=0)
    p.add_argument("id")


def run(args: argparse.Namespace, ctx: object, restore_images: Path | None = None) -> int:
    container_id = check_id(args.id)
    bundle, spec = specmod.load_bundle(args.bundle)
    rootfs = specmod.rootfs_path(bundle, spec)
    sysctls.check(spec)
    if spec["process"].get("terminal") and not args.console_socket:
        raise RunvmError("process.terminal is true but no --console-socket was given")
    store = ctx.store  # type: ignore[attr-defined]
    if store.dir(container_id).exists():
        raise RunvmError(f"container with id exists: {container_id}")
    from runtime.runvm.shim import vm_setup  # heavy imports happen once, before the fork

    state_dir = store.claim(container_id)
    r, w = os.pipe()
    try:
        pid = os.fork()
    except OSError:
        store.remove(container_id)
        raise
    if pid == 0:
        os.close(r)
        vm_setup.main(vm_setup.Request(id=container_id, state_dir=state_dir, bundle=bundle, spec=spec, rootfs=rootfs,
                                     store=store, ready_fd=w, console_socket=args.console_socket,
                                     boot=getattr(ctx, "boot", "auto"), tb_mib=getattr(ctx, "tb_mib", None),
                                     pool=getattr(ctx, "pool", False),
                                     restore_images=restore_images))
    os.close(w)
    try:
        wait_ready(r, pid, "create", CREATE_TIMEOUT)
    except BaseException:
        store.remove(container_id)
        cgroups.remove(cgroups.path_of(spec, container_id))
        raise
    if args.pid_file:
        write_pid_file(args.pid_file, pid)
    return 0
