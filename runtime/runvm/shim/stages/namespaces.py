"""Stage: the container's network namespace (Docker's, or one of our own) and a mount namespace (private, or a
pooled VM's), remembering the daemon's for hooks and for files only the daemon's view has."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runtime.runvm import share
from runtime.runvm import spec as specmod
from runtime.runvm.errors import RunvmError
from runtime.runvm.sys import CLONE_NEWNET, CLONE_NEWNS, private_mount_namespace, setns, unshare


@dataclass
class Namespaces:
    orig_net: int
    orig_mnt: int
    own_netns: bool
    vm_mnt: int = -1
    """A pooled VM's mount namespace, which we live in; -1: our own private one."""
    trees: list[int] | None = field(default=None)
    """For a pooled VM: the rootfs and bind sources, cloned from the daemon's view before we left it."""

    def read_daemon_file(self, path: str) -> str:
        """A file as the container's daemon sees it (for a pooled VM we live in the VM's mount namespace)."""
        if self.vm_mnt < 0:
            return Path(path).read_text()
        setns(self.orig_mnt, CLONE_NEWNS)
        try:
            return Path(path).read_text()
        finally:
            setns(self.vm_mnt, CLONE_NEWNS)

    def open_daemon_dir(self, path: str) -> int:
        """An O_PATH fd of a directory as the container's daemon sees it: later reads of the files in it (which
        the daemon may still rewrite) work from any mount namespace."""
        flags = os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC
        if self.vm_mnt < 0:
            return os.open(path, flags)
        setns(self.orig_mnt, CLONE_NEWNS)
        try:
            return os.open(path, flags)
        finally:
            setns(self.vm_mnt, CLONE_NEWNS)

    def in_host_namespaces(self) -> None:
        """preexec for hooks: they run where runc would run them, not in our netns or mount namespace."""
        setns(self.orig_mnt, 0)
        setns(self.orig_net, 0)


def enter(spec: dict[str, Any], rootfs: Path, vm_mnt: int | None) -> Namespaces:
    """Join (or make) the container's netns; then a private mount namespace, or the pooled VM's (vm_mnt)."""
    has_ns, path = specmod.network_namespace(spec)
    ns = Namespaces(orig_net=os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC),
                    orig_mnt=os.open("/proc/self/ns/mnt", os.O_RDONLY | os.O_CLOEXEC), own_netns=False)
    if has_ns and path:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as e:
            raise RunvmError(f"network namespace {path}: {e.strerror}") from e
        setns(fd, CLONE_NEWNET)
        os.close(fd)
    elif has_ns:
        unshare(CLONE_NEWNET)
        ns.own_netns = True
    if vm_mnt is None:
        private_mount_namespace()
        return ns
    # what the container's daemon sees (its rootfs, bind sources) is taken from ours before we leave
    ns.trees = share.clone_sources(rootfs, spec.get("mounts") or [])
    setns(vm_mnt, CLONE_NEWNS)
    ns.vm_mnt = vm_mnt
    return ns
