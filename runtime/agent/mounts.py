"""Building a container's filesystem view inside the guest from the OCI spec: mounts, devices, pivot_root."""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from typing import Any

from runtime.agent import libc

FLAGS = {
    "ro": (libc.MS_RDONLY, True), "rw": (libc.MS_RDONLY, False),
    "nosuid": (libc.MS_NOSUID, True), "suid": (libc.MS_NOSUID, False),
    "nodev": (libc.MS_NODEV, True), "dev": (libc.MS_NODEV, False),
    "noexec": (libc.MS_NOEXEC, True), "exec": (libc.MS_NOEXEC, False),
    "sync": (libc.MS_SYNCHRONOUS, True), "async": (libc.MS_SYNCHRONOUS, False),
    "dirsync": (libc.MS_DIRSYNC, True), "remount": (libc.MS_REMOUNT, True),
    "mand": (libc.MS_MANDLOCK, True), "nomand": (libc.MS_MANDLOCK, False),
    "atime": (libc.MS_NOATIME, False), "noatime": (libc.MS_NOATIME, True),
    "diratime": (libc.MS_NODIRATIME, False), "nodiratime": (libc.MS_NODIRATIME, True),
    "relatime": (libc.MS_RELATIME, True), "norelatime": (libc.MS_RELATIME, False),
    "strictatime": (libc.MS_STRICTATIME, True), "nosymfollow": (libc.MS_NOSYMFOLLOW, True),
    "bind": (libc.MS_BIND, True), "rbind": (libc.MS_BIND | libc.MS_REC, True),
}
PROPAGATION = {
    "private": libc.MS_PRIVATE, "rprivate": libc.MS_PRIVATE | libc.MS_REC,
    "slave": libc.MS_SLAVE, "rslave": libc.MS_SLAVE | libc.MS_REC,
    "shared": libc.MS_SHARED, "rshared": libc.MS_SHARED | libc.MS_REC,
    "unbindable": libc.MS_UNBINDABLE, "runbindable": libc.MS_UNBINDABLE | libc.MS_REC,
}
RECURSIVE_READONLY_LIKE = {"rro", "rrw"}


def parse_options(options: list[str]) -> tuple[int, int, str]:
    """(mount flags, propagation flags, data) from an OCI options list."""
    flags, prop, data = 0, 0, []
    for opt in options:
        if opt in FLAGS:
            bit, on = FLAGS[opt]
            flags = flags | bit if on else flags & ~bit
        elif opt in PROPAGATION:
            prop |= PROPAGATION[opt]
        elif opt in RECURSIVE_READONLY_LIKE:
            if opt == "rro":
                flags |= libc.MS_RDONLY
        else:
            data.append(opt)
    return flags, prop, ",".join(data)


def inside(root: str, path: str) -> str:
    """Resolve path under root without letting symlinks escape it (they are resolved relative to root)."""
    parts = [p for p in path.split("/") if p not in ("", ".")]
    current = root
    hops = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            current = os.path.dirname(current) if current != root else root
            continue
        candidate = os.path.join(current, part)
        try:
            st = os.lstat(candidate)
        except FileNotFoundError:
            current = candidate
            continue
        if stat.S_ISLNK(st.st_mode):
            hops += 1
            if hops > 40:
                raise OSError(errno.ELOOP, f"too many symlinks resolving {path}")
            target = os.readlink(candidate)
            parts = [p for p in target.split("/") if p not in ("", ".")] + parts
            if target.startswith("/"):
                current = root
            continue
        current = candidate
    return current


def _make_target(target: str, like_file: bool) -> None:
    if os.path.lexists(target):
        return
    os.makedirs(os.path.dirname(target), exist_ok=True)
    if like_file:
        with open(target, "a"):
            pass
    else:
        os.makedirs(target, exist_ok=True)


def bind(source: str, target: str, flags: int, prop: int) -> None:
    _make_target(target, not os.path.isdir(source))
    libc.mount(source, target, None, libc.MS_BIND | (flags & libc.MS_REC))
    ro_like = flags & ~(libc.MS_BIND | libc.MS_REC | libc.MS_REMOUNT)
    if ro_like:
        libc.mount(source, target, None, libc.MS_BIND | libc.MS_REMOUNT | ro_like)
    if prop:
        libc.mount("", target, None, prop)


def cgroup_view(target: str, layout: list[dict[str, str]], cgroup_path: str, flags: int) -> None:
    """runc's cgroup mount: on v1 a tmpfs with each hierarchy's container cgroup bound where the host has it; on
    v2 the container's own cgroup directory as /sys/fs/cgroup (what a cgroup2 mount in its cgroup namespace
    shows under runc)."""
    os.makedirs(target, exist_ok=True)
    if any(e.get("type") == "cgroup2" and e.get("dir") == "" for e in layout):
        source = os.path.join("/sys/fs/cgroup", cgroup_path.lstrip("/"))
        libc.mount(source, target, None, libc.MS_BIND)
        extra = flags & (libc.MS_RDONLY | libc.MS_NOSUID | libc.MS_NODEV | libc.MS_NOEXEC)
        libc.mount(source, target, None, libc.MS_BIND | libc.MS_REMOUNT | extra)
        return
    libc.mount("tmpfs", target, "tmpfs", libc.MS_NOSUID | libc.MS_NODEV | libc.MS_NOEXEC, "mode=755")
    for entry in layout:
        name = entry["dir"]
        source = os.path.join("/sys/fs/cgroup", name, cgroup_path.lstrip("/"))
        if entry.get("type") == "cgroup2":
            source = os.path.join("/sys/fs/cgroup", name)
        if not os.path.isdir(source):
            continue
        dest = os.path.join(target, name)
        os.makedirs(dest, exist_ok=True)
        libc.mount(source, dest, None, libc.MS_BIND)
        extra = flags & (libc.MS_RDONLY | libc.MS_NOSUID | libc.MS_NODEV | libc.MS_NOEXEC)
        if extra:
            libc.mount(source, dest, None, libc.MS_BIND | libc.MS_REMOUNT | extra)
    for link, dest in entry_links(layout).items():
        with contextlib.suppress(FileExistsError):
            os.symlink(dest, os.path.join(target, link))
    if flags & libc.MS_RDONLY:
        libc.mount("tmpfs", target, None, libc.MS_REMOUNT | libc.MS_RDONLY | libc.MS_NOSUID | libc.MS_NODEV
                   | libc.MS_NOEXEC)


def entry_links(layout: list[dict[str, str]]) -> dict[str, str]:
    """Co-mounted controllers (cpu,cpuacct) get per-controller symlinks, as on hosts that co-mount them."""
    links = {}
    for entry in layout:
        if "," in entry["dir"]:
            for part in entry["dir"].split(","):
                links[part] = entry["dir"]
    return links


DEFAULT_DEVICES = [
    {"path": "/dev/null", "type": "c", "major": 1, "minor": 3},
    {"path": "/dev/zero", "type": "c", "major": 1, "minor": 5},
    {"path": "/dev/full", "type": "c", "major": 1, "minor": 7},
    {"path": "/dev/random", "type": "c", "major": 1, "minor": 8},
    {"path": "/dev/urandom", "type": "c", "major": 1, "minor": 9},
    {"path": "/dev/tty", "type": "c", "major": 5, "minor": 0},
]
"""What runc always creates, whether or not the spec lists them (Docker's spec does not)."""


def make_devices(root: str, devices: list[dict[str, Any]]) -> None:
    listed = {d["path"] for d in devices}
    for dev in [*(d for d in DEFAULT_DEVICES if d["path"] not in listed), *devices]:
        path = inside(root, dev["path"])
        os.makedirs(os.path.dirname(path), exist_ok=True)
        kind = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}.get(dev.get("type", "c"))
        mode = (dev.get("fileMode") or 0o666) & 0o7777
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        os.mknod(path, mode | (kind or stat.S_IFCHR), os.makedev(dev.get("major", 0), dev.get("minor", 0)))
        os.chmod(path, mode)
        os.chown(path, dev.get("uid", 0) or 0, dev.get("gid", 0) or 0)


def default_dev_links(root: str) -> None:
    for link, target in (("dev/fd", "/proc/self/fd"), ("dev/stdin", "/proc/self/fd/0"),
                         ("dev/stdout", "/proc/self/fd/1"), ("dev/stderr", "/proc/self/fd/2"),
                         ("dev/core", "/proc/kcore"), ("dev/ptmx", "pts/ptmx")):
        path = os.path.join(root, link)
        if os.path.isdir(os.path.dirname(path)):
            with contextlib.suppress(FileExistsError):
                os.symlink(target, path)


def setup(root: str, mounts: list[dict[str, Any]], devices: list[dict[str, Any]], shares: dict[str, str],
          cgroup_layout: list[dict[str, str]], cgroup_path: str) -> None:
    """Everything before pivot_root. `shares` maps the host's share keys to guest paths (bind sources)."""
    libc.mount("", "/", None, libc.MS_REC | libc.MS_PRIVATE)
    libc.mount(root, root, None, libc.MS_BIND | libc.MS_REC)
    for m in mounts:
        try:
            _mount_one(root, m, shares, cgroup_layout, cgroup_path)
        except OSError as e:
            what = m.get("host_source") or m.get("source") or m.get("type")
            raise OSError(e.errno, f'error mounting "{what}" to rootfs at "{m["destination"]}": '
                                   f'{os.strerror(e.errno) if e.errno else e}') from e
    make_devices(root, devices)
    default_dev_links(root)


def _mount_one(root: str, m: dict[str, Any], shares: dict[str, str], cgroup_layout: list[dict[str, str]],
               cgroup_path: str) -> None:
    dest = inside(root, m["destination"])
    options = m.get("options") or []
    flags, prop, data = parse_options(options)
    mtype = m.get("type") or ""
    if mtype == "bind" or flags & libc.MS_BIND:
        source = m.get("source", "")
        source = shares.get(source, source)
        bind(source, dest, flags | libc.MS_BIND, prop)
    elif mtype == "cgroup":
        cgroup_view(dest, cgroup_layout, cgroup_path, flags)
    else:
        os.makedirs(dest, exist_ok=True)
        if mtype == "tmpfs" and m["destination"] == "/dev":
            data = data or "mode=755"
        libc.mount(m.get("source") or mtype, dest, mtype, flags, data or None)
        if prop:
            libc.mount("", dest, None, prop)


def pivot(root: str) -> None:
    """pivot_root with the old root stacked on the new one, then detached: no directory needed for it."""
    os.chdir(root)
    libc.pivot_root(".", ".")
    libc.umount(".", libc.MNT_DETACH)
    os.chdir("/")


def mask(paths: list[str]) -> None:
    for p in paths:
        try:
            if os.path.isdir(p):
                libc.mount("tmpfs", p, "tmpfs", libc.MS_RDONLY)
            elif os.path.exists(p):
                libc.mount("/dev/null", p, None, libc.MS_BIND)
        except OSError as e:
            if e.errno not in (errno.ENOENT, errno.ENOTDIR):
                raise


def readonly(paths: list[str]) -> None:
    for p in paths:
        if not os.path.exists(p):
            continue
        libc.mount(p, p, None, libc.MS_BIND | libc.MS_REC)
        libc.mount(p, p, None, libc.MS_BIND | libc.MS_REMOUNT | libc.MS_RDONLY | libc.MS_REC)


def readonly_root() -> None:
    libc.mount("", "/", None, libc.MS_BIND | libc.MS_REMOUNT | libc.MS_RDONLY)
