"""Checkpoint and restore of a container's processes with CRIU inside the guest (the guest runs Debian's 6.1
kernel, where CRIU works; QEMU cannot snapshot a VM while its 9p share is mounted). The dump runs `criu dump`;
the restore, into a new VM, talks to `criu swrk` (RPC), the only way to get a recreated terminal's master back.

What CRIU cannot know by itself, and how it is told:
- the container's root is a bind of a directory of the 9p share: CRIU never dumps the tree's root mount; at
  restore `root` names the (new) rootfs, bound on a private mount point because CRIU wants a mount point (made
  read-only there when the dumped root was: CRIU does not carry the root mount's flags over);
- the other 9p mounts (bind sources such as /etc/hosts, volumes) and the cgroup binds have no root mount in the
  container's namespace: they are external (`--external mnt[DEST]:DEST`) and re-bound at restore from the new
  VM's share (found by destination in the new spec) and cgroups;
- stdio pipes have their other end in the agent: CRIU dumps them as pipes; at restore the agent's fresh pipes
  replace them (inherit_fd), so output reaches the new VM's streams and Docker's logs. A pty (-t) has its master
  in the agent: one unpaired slave at dump (--shell-job); at restore orphan_pts_master recreates the pair;
- cgroups: the restore runs from inside the container's guest cgroup with manage_cgroups_mode=ignore, so the
  restored tasks are born there;
- the network namespace is the guest's own one, which CRIU leaves alone (the restored tasks use the new VM's).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from runtime.agent import criurpc, libc
from runtime.agent.cgroups import AnyCgroup, Cgroup2
from runtime.agent.process import ProcessError, Spawned, Stdio

CRIU = "criu"
WORK = "/run/vmparity-criu"
"""Guest-local scratch for restores (CRIU's work dir, logs, the bound root): the images dir is Docker's."""
INFO_FILE = "runvm.json"
"""Written by the host next to the images: {"tty": ..., "info": what dump() returned}."""
EXTERNAL_FS = {"9p", "cgroup", "cgroup2"}
"""Mounts in the container whose file system has no root mount in its namespace: CRIU must treat them as
external bind mounts (the container root itself, also 9p, is the tree's root and handled by --root)."""
VERBOSITY = "-v4"
RESTORE_LOG = "restore.log"
PTS_MASTER = "orphan-pts-master"
"""The notification with which CRIU hands over the master of a terminal it recreated."""


@dataclass
class Mount:
    mount_id: int
    parent_id: int
    root: str
    mountpoint: str
    options: list[str]
    fstype: str
    source: str


def _unescape(field: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as octal."""
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and i + 4 <= len(field) and field[i + 1:i + 4].isdigit():
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def mountinfo(pid: int) -> list[Mount]:
    with open(f"/proc/{pid}/mountinfo") as f:
        return parse_mountinfo(f.read())


def parse_mountinfo(text: str) -> list[Mount]:
    """/proc/PID/mountinfo's lines; the optional fields end at " - ", the file system's at the line's end."""
    mounts = []
    for line in text.splitlines():
        pre, _sep, post = line.partition(" - ")
        fields, tail = pre.split(), post.split()
        mounts.append(Mount(int(fields[0]), int(fields[1]), _unescape(fields[3]), _unescape(fields[4]),
                            fields[5].split(","), tail[0], _unescape(tail[1]) if len(tail) > 1 else ""))
    return mounts


def _externals(mounts: list[Mount]) -> dict[str, dict[str, str]]:
    """Mountpoint -> what it was (file system and root) for every mount CRIU must leave to us."""
    return {m.mountpoint: {"fstype": m.fstype, "root": m.root}
            for m in mounts if m.fstype in EXTERNAL_FS and m.mountpoint != "/"}


def _stdio_files(pid: int) -> dict[str, str]:
    """fd number -> CRIU's name of the file ("pipe:[N]") for the init's fds 0-2 that are pipes."""
    out = {}
    for fd in (0, 1, 2):
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
            if target.startswith("pipe:["):
                out[str(fd)] = target
    return out


PROBE_NOISE = ("tun: ", "veth pair", "reported by netlink", "Diag module missing", "exited, status=")
"""Error lines of CRIU's start-up probes (kernel features this guest lacks and CRIU does not need here)."""


def _log_errors(path: str, limit: int = 4) -> str:
    """The last Error lines of a CRIU log, without timestamps and probe noise: why it failed."""
    try:
        with open(path, errors="replace") as f:
            lines = [ln.split(") ", 1)[-1].strip() for ln in f if "Error (" in ln]
    except OSError:
        return ""
    return " | ".join([ln for ln in lines if not any(n in ln for n in PROBE_NOISE)][-limit:])


def _run(args: list[str], log_path: str, what: str, **popen: Any) -> None:
    """Run CRIU to completion; a failure becomes a ProcessError quoting the Error lines of its log."""
    started = time.monotonic()
    proc = subprocess.run([CRIU, *args], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, check=False, **popen)
    _log(f"criu {what}: exit {proc.returncode} in {time.monotonic() - started:.2f}s")
    if proc.returncode != 0:
        detail = _log_errors(log_path) or proc.stdout.decode(errors="replace").strip()[-600:]
        raise ProcessError(f"criu {what} in the guest failed (exit {proc.returncode}): {detail}")


def _log(msg: str) -> None:
    with contextlib.suppress(OSError), open("/dev/kmsg", "w") as f:
        f.write(f"vmparity-agent: {msg}\n")


def _frozen(cgroup: AnyCgroup) -> bool:
    return cgroup.is_frozen()


def _kill_all(init_pid: int, cgroup: AnyCgroup) -> None:
    for pid in {init_pid, *cgroup.pids()}:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def dump(init_pid: int, images: str, cgroup: AnyCgroup, leave_running: bool, stdio: dict[str, Any],
         flush_output: Callable[[], None] = lambda: None) -> dict[str, Any]:
    """CRIU-dump the container's process tree (rooted at its init) into images; returns what restore needs.

    CRIU always leaves the tasks frozen in their freezer cgroup (--leave-running on a frozen cgroup), and the agent
    kills them itself when the container must stop. Were CRIU to kill them, it would wait for the pid namespace to
    empty while exec'd processes (children of the agent, whose loop this call blocks) stay unreaped: a deadlock.
    flush_output() runs once the tasks are frozen: output they wrote before the checkpoint is sent to the host
    then, since CRIU does not carry the contents of the stdio pipes (the agent holds their other end) across.
    """
    os.makedirs(images, exist_ok=True)
    mounts = mountinfo(init_pid)
    externals = _externals(mounts)
    args = ["dump", "--tree", str(init_pid), "--images-dir", images, "--log-file", "dump.log", VERBOSITY]
    for mountpoint in externals:
        args += ["--external", f"mnt[{mountpoint}]:{mountpoint}"]
    if stdio.get("tty"):
        args.append("--shell-job")  # the pty's master is the agent's: one unpaired slave, given back at restore
    freezer = "freezer" in cgroup.dirs
    if freezer:
        args += ["--freeze-cgroup", cgroup.dirs["freezer"], "--leave-running"]
    elif leave_running:
        args.append("--leave-running")
    info = {"version": 1, "tty": bool(stdio.get("tty")), "stdio": _stdio_files(init_pid), "externals": externals,
            "cgroup": cgroup.path, "root_readonly": any(m.mountpoint == "/" and "ro" in m.options for m in mounts)}
    was_frozen = freezer and _frozen(cgroup)  # Docker pauses a container around its checkpoint
    if freezer and not was_frozen:
        cgroup.freeze(True)
    dumped = False
    try:
        flush_output()
        _run(args, os.path.join(images, "dump.log"), "dump")
        dumped = True
    finally:
        if dumped and not leave_running and freezer:
            _kill_all(init_pid, cgroup)
        if freezer and (not was_frozen or (dumped and not leave_running)):
            cgroup.freeze(False)  # the killed tasks die once thawed; otherwise back to how they were
    return info


def _external_source(mountpoint: str, ext: dict[str, str], cfg: dict[str, Any], cgroup: AnyCgroup) -> str:
    """Where an external mount comes from in this VM: the spec's bind source in the share, or the guest's own
    cgroup hierarchy (the container's cgroup in it)."""
    if ext["fstype"] == "9p":
        shares = cfg.get("shares") or {}
        for m in (cfg["spec"].get("mounts") or []):
            if m.get("destination") == mountpoint and m.get("source") in shares:
                return shares[m["source"]]
        # not in this spec: the same path in the share as at dump time
        return os.path.join(os.path.dirname(cfg["rootfs"]), ext["root"].lstrip("/"))
    if isinstance(cgroup, Cgroup2):
        return cgroup.dir  # the container's /sys/fs/cgroup is its own cgroup's directory (mounts.cgroup_view)
    name = os.path.basename(mountpoint)
    base = os.path.join("/sys/fs/cgroup", name)
    if ext["fstype"] == "cgroup2":
        return base
    return os.path.join(base, cgroup.path.lstrip("/"))


CRIU_RESTORES_SYSCTL = ("kernel.msg", "kernel.sem", "kernel.shm", "fs.mqueue.", "kernel.hostname",
                        "kernel.domainname")
"""Keys of the container's own ipc and uts namespaces, which CRIU dumps and restores with them."""


def _vm_sysctls(spec: dict[str, Any]) -> None:
    """The spec's other sysctls (net.*: the container uses the guest's own network namespace; guest-kernel keys)
    belong to the VM, not to the dump: written again in the new one, as start_init wrote them in the old."""
    for key, value in ((spec.get("linux") or {}).get("sysctl") or {}).items():
        if key.startswith(CRIU_RESTORES_SYSCTL):
            continue
        try:
            with open("/proc/sys/" + key.replace(".", "/"), "w") as f:
                f.write(value)
        except OSError as e:
            raise ProcessError(f"write sysctl key {key}: {e.strerror}") from e


def restore(images: str, cfg: dict[str, Any], stdio: Stdio, cgroup: AnyCgroup, layout: list[dict[str, str]]) -> Spawned:
    """CRIU-restore the dumped tree into this VM: the new rootfs, this VM's share and cgroups, the agent's pipes
    (or, for a terminal, a pty CRIU recreates in the container's devpts and whose master it hands over)."""
    try:
        with open(os.path.join(images, INFO_FILE)) as f:
            info = json.load(f).get("info") or {}
    except (OSError, ValueError) as e:
        raise ProcessError(f"no usable {INFO_FILE} in the checkpoint: {e}") from e
    if bool(info.get("tty")) != stdio.tty:
        had, has = ("with", "without") if info.get("tty") else ("without", "with")
        raise ProcessError(f"the checkpoint was taken {had} a terminal (-t) and the container is now {has} one")
    _vm_sysctls(cfg["spec"])
    os.makedirs(WORK, exist_ok=True)
    root = os.path.join(WORK, "root")
    os.makedirs(root, exist_ok=True)
    log_path = os.path.join(WORK, RESTORE_LOG)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(log_path)
    # CLI equivalent (swrk restores detached): criu restore -D IMAGES -W WORK -o restore.log -v4 -d --root ROOT
    #   --manage-cgroups=ignore --external mnt[DEST]:SOURCE... --inherit-fd fd[N]:pipe:[INODE]...
    # With a terminal, orphan_pts_master (RPC only) instead: CRIU reopens the pty at its old index in the restored
    # devpts and sends the master with its "orphan-pts-master" notification (notify_scripts).
    opts = criurpc.Message().number(criurpc.LOG_LEVEL, 4).text(criurpc.LOG_FILE, RESTORE_LOG)
    opts.text(criurpc.ROOT, root).number(criurpc.MANAGE_CGROUPS_MODE, criurpc.CG_IGNORE)
    for mountpoint, ext in (info.get("externals") or {}).items():
        opts.text(criurpc.EXTERNAL, f"mnt[{mountpoint}]:{_external_source(mountpoint, ext, cfg, cgroup)}")
    if stdio.tty:
        opts.number(criurpc.NOTIFY_SCRIPTS, 1).number(criurpc.ORPHAN_PTS_MASTER, 1)
    else:
        fds = dict(zip(("0", "1", "2"), stdio.child_fds, strict=True))
        for n, name in (info.get("stdio") or {}).items():
            if n in fds:
                opts.sub(criurpc.INHERIT_FD, criurpc.Message().text(1, name).number(2, fds[n]))

    def in_child() -> None:
        # Born in the container's cgroup, so CRIU's (ignored) cgroups are the right ones for the tasks; the
        # root bind lives in a private mount namespace and disappears with CRIU.
        cgroup.join()
        libc.unshare(libc.CLONE_NEWNS)
        libc.mount("", "/", None, libc.MS_REC | libc.MS_PRIVATE)
        libc.mount(cfg["rootfs"], root, None, libc.MS_BIND | libc.MS_REC)
        if info.get("root_readonly"):
            # CRIU binds --root as the tree's root without its dumped flags; a bind keeps the source's ro
            libc.mount(root, root, None, libc.MS_BIND | libc.MS_REMOUNT | libc.MS_RDONLY)

    images_fd = os.open(images, os.O_RDONLY | os.O_DIRECTORY)  # CRIU opens it as /proc/<agent>/fd/N
    work_fd = os.open(WORK, os.O_RDONLY | os.O_DIRECTORY)
    started = time.monotonic()
    try:
        opts.number(criurpc.IMAGES_DIR_FD, images_fd).number(criurpc.WORK_DIR_FD, work_fd)
        result = criurpc.restore(CRIU, opts, stdio.child_fds, in_child)
    finally:
        os.close(images_fd)
        os.close(work_fd)
        stdio.close_child_ends()  # the restored tasks hold them now (or nobody does)
    _log(f"criu restore: {f'pid {result.pid}' if result.ok else result.error} in {time.monotonic() - started:.2f}s")
    master = result.fds.pop(PTS_MASTER, None)
    for fd in result.fds.values():
        os.close(fd)
    if not result.ok or result.pid <= 0 or (stdio.tty and master is None):
        if master is not None:
            os.close(master)
        detail = _log_errors(log_path) or result.error or "no terminal master from CRIU"
        raise ProcessError(f"criu restore in the guest failed: {detail}")
    # Nothing waits for a "start" on this socket (a restored container is running already): a closed pair.
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    theirs.close()
    return Spawned(result.pid, ours, master)
