"""Starting container processes in the guest: the container's init (new namespaces, mounts, held until
`start`) and exec'd processes (joining those namespaces).

The agent forks a helper that enters or creates the namespaces and forks the real process; the helper reports
the pid and exits, so the process is re-parented to the agent (PID 1) and reaped there. The process talks to the
agent over a SOCK_SEQPACKET pair until it execs: "pid N", "ready", a pty master (SCM_RIGHTS), or "error ...".
"""

from __future__ import annotations

import array
import contextlib
import fcntl
import json
import os
import resource
import signal
import socket
import termios
import traceback
from dataclasses import dataclass, field
from typing import Any

from runtime.agent import caps, libc, mounts
from runtime.agent.cgroups import AnyCgroup, Cgroup2, open_cgroup

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
RLIMITS = {name: getattr(resource, name) for name in dir(resource) if name.startswith("RLIMIT_")}


class ProcessError(Exception):
    """The process could not be started; the message is what Docker shows the user."""


@dataclass
class Stdio:
    """The agent's ends of a process's stdio: pipes, or a pty master."""

    tty: bool
    stdin: int | None = None
    stdout: int | None = None
    stderr: int | None = None
    child_fds: list[int] = field(default_factory=list)

    @classmethod
    def pipes(cls) -> Stdio:
        in_r, in_w = os.pipe()
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        return cls(False, in_w, out_r, err_r, [in_r, out_w, err_w])

    def close_child_ends(self) -> None:
        for fd in self.child_fds:
            os.close(fd)
        self.child_fds = []


def _send(sock: socket.socket, text: str, fds: list[int] | None = None) -> None:
    if fds:
        sock.sendmsg([text.encode()], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))])
    else:
        sock.send(text.encode())


def _lookup(argv0: str, env: list[str]) -> str:
    if "/" in argv0:
        if not argv0.startswith("/"):
            return argv0  # relative to the process's cwd, which is only entered at exec time
        if not os.path.exists(argv0):
            raise ProcessError(f'exec: "{argv0}": stat {argv0}: no such file or directory')
        if not os.access(argv0, os.X_OK) or os.path.isdir(argv0):
            raise ProcessError(f'exec: "{argv0}": permission denied')
        return argv0
    path = next((e[5:] for e in env if e.startswith("PATH=")), DEFAULT_PATH)
    for d in path.split(":"):
        candidate = os.path.join(d or ".", argv0)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    raise ProcessError(f'exec: "{argv0}": executable file not found in $PATH')


def _stdio_in_child(stdio: Stdio, sock: socket.socket, console_size: dict[str, int] | None) -> None:
    if stdio.tty:
        master, slave = _open_pty_here()
        if console_size:
            _set_winsize(slave, console_size.get("height", 0), console_size.get("width", 0))
        _send(sock, "pty", [master])
        os.close(master)
        os.setsid()
        fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
        for target in (0, 1, 2):
            os.dup2(slave, target)
        if slave > 2:
            os.close(slave)
    else:
        in_r, out_w, err_w = stdio.child_fds
        os.dup2(in_r, 0)
        os.dup2(out_w, 1)
        os.dup2(err_w, 2)
        for fd in (in_r, out_w, err_w):
            if fd > 2:
                os.close(fd)


def _open_pty_here() -> tuple[int, int]:
    """A pty from the devpts instance of the current mount namespace (the container's own /dev/pts)."""
    master, slave = os.openpty()
    os.set_inheritable(master, False)
    return master, slave


def _set_winsize(fd: int, rows: int, cols: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, array.array("H", [rows, cols, 0, 0]))


def set_winsize(fd: int, rows: int, cols: int) -> None:
    _set_winsize(fd, rows, cols)


def _rlimits(proc: dict[str, Any]) -> None:
    for rl in proc.get("rlimits") or []:
        res = RLIMITS.get(rl["type"])
        if res is not None:
            resource.setrlimit(res, (rl["soft"] if rl["soft"] >= 0 else resource.RLIM_INFINITY,
                                     rl["hard"] if rl["hard"] >= 0 else resource.RLIM_INFINITY))


RESET_SIGNALS = (signal.SIGINT, signal.SIGPIPE, signal.SIGCHLD, signal.SIGXFSZ, signal.SIGTERM, signal.SIGHUP)


def _credentials(proc: dict[str, Any]) -> None:
    """Credentials, capabilities and no_new_privs in runc's order, then the cwd and the signal dispositions:
    all but the exec. The container's init does it before it waits for `start`, as runc's init does, so that
    `start` costs only the exec (and a bad user or cwd fails the create, as with runc)."""
    user = proc.get("user") or {}
    uid, gid = int(user.get("uid", 0)), int(user.get("gid", 0))
    capset = proc.get("capabilities") or {}
    caps.drop_bounding(caps.mask(capset.get("bounding")))
    if user.get("umask") is not None:
        os.umask(int(user["umask"]))
    os.setgroups([int(g) for g in user.get("additionalGids") or []])
    libc.prctl(libc.PR_SET_KEEPCAPS, 1)
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    libc.prctl(libc.PR_SET_KEEPCAPS, 0)
    caps.apply(capset)
    if proc.get("noNewPrivileges"):
        libc.prctl(libc.PR_SET_NO_NEW_PRIVS, 1)
    cwd = proc.get("cwd") or "/"
    try:
        os.chdir(cwd)
    except OSError as e:
        raise ProcessError(f"chdir to cwd ({cwd!r}) set in config.json failed: {e.strerror}") from e
    for sig in RESET_SIGNALS:  # what the agent (Python, asyncio) changed; the rest are default already
        with contextlib.suppress(OSError, ValueError):
            signal.signal(sig, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, [])


def _exec(proc: dict[str, Any], exe: str) -> None:
    env = proc.get("env") or []
    args = proc.get("args") or []
    try:
        os.execve(exe, args, dict(e.split("=", 1) if "=" in e else (e, "") for e in env))
    except OSError as e:
        raise ProcessError(f"exec: {args[0]!r}: {e.strerror}") from e


def _child_main(work: Any, sock: socket.socket) -> None:
    """Run work() in a forked child; any failure is reported to the agent, then the child exits 127."""
    try:
        work()
    except BaseException as e:  # the child must never return into the agent's loop
        if isinstance(e, ProcessError | OSError):
            msg = str(e)  # already says what failed, as runc would
        else:
            msg = f"{e.__class__.__name__}: {e}"
            _log_trace(traceback.format_exc())
        try:
            _send(sock, "error " + msg)
        finally:
            os._exit(127)
    os._exit(0)


def _log_trace(text: str) -> None:
    """An unexpected failure's traceback goes to the guest's kernel log, not into the user's error message."""
    try:
        with open("/dev/kmsg", "w") as f:
            f.write("vmparity-agent: " + text.replace("\n", " | ")[:900] + "\n")
    except OSError:
        pass


@dataclass
class Spawned:
    pid: int
    sock: socket.socket
    pty_master: int | None = None
    helper: int = 0
    """The short-lived helper's pid: the agent's reaper collects it and must not report it."""


def _collect(sock: socket.socket, want_pty: bool, until: str) -> Spawned:
    """Read the helper's reports until `until` ("ready" or exec started); raise on "error"."""
    pid = 0
    master = None
    while True:
        data, ancdata, _flags, _addr = sock.recvmsg(65536, socket.CMSG_SPACE(4 * 4))
        for level, kind, raw in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds = array.array("i")
                fds.frombytes(raw[: len(raw) - len(raw) % 4])
                master = fds[0]
        text = data.decode(errors="replace")
        if not text and not ancdata:
            if until == "exec" and pid:
                return Spawned(pid, sock, master)
            raise ProcessError("the process failed to start (its helper exited without a report)")
        if text.startswith("error "):
            raise ProcessError(text[6:])
        if text.startswith("pid "):
            pid = int(text[4:])
        elif text == until:
            return Spawned(pid, sock, master)


INIT_NAMESPACES = libc.CLONE_NEWNS | libc.CLONE_NEWUTS | libc.CLONE_NEWIPC | libc.CLONE_NEWPID


def _init_work(cfg: dict[str, Any], stdio: Stdio, cgroup: AnyCgroup, layout: list[dict[str, str]],
               sock: socket.socket, joined: bool = False) -> None:
    """In the container's init, inside its new namespaces: its filesystem, hostname, sysctls and limits; then
    "ready", and the exec once the agent says start."""
    spec = cfg["spec"]
    linux = spec.get("linux") or {}
    proc = spec["process"]
    if not joined:  # joined: the waiting init was in the template's spare cgroup, now the container's
        cgroup.join()  # before pivot_root: afterwards only the container's own cgroup view is mounted
    if isinstance(cgroup, Cgroup2) and any(n.get("type") == "cgroup" for n in linux.get("namespaces") or []):
        libc.unshare(libc.CLONE_NEWCGROUP)  # rooted at the container's cgroup, as runc on a v2 host
    root = cfg["rootfs"]
    mounts.setup(root, spec.get("mounts") or [], linux.get("devices") or [], cfg.get("shares") or {},
                 layout, cgroup.path)
    mounts.pivot(root)
    if spec.get("hostname"):
        socket.sethostname(spec["hostname"])
    if spec.get("domainname"):
        libc.setdomainname(spec["domainname"])
    for key, value in (linux.get("sysctl") or {}).items():
        path = "/proc/sys/" + key.replace(".", "/")
        try:
            with open(path, "w") as f:
                f.write(value)
        except OSError as e:
            raise ProcessError(f"write sysctl key {key}: {e.strerror}") from e
    mounts.readonly(linux.get("readonlyPaths") or [])
    mounts.mask(linux.get("maskedPaths") or [])
    if proc.get("oomScoreAdj") is not None:
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write(str(proc["oomScoreAdj"]))
    _rlimits(proc)
    if not stdio.tty:
        # As runc: the container's init leads its own session (with a tty, _stdio_in_child does it).
        # CRIU refuses to dump a tree whose session leader is outside its pid namespace.
        os.setsid()
    _stdio_in_child(stdio, sock, proc.get("consoleSize"))
    args = proc.get("args") or []
    if not args:
        raise ProcessError("args must not be empty")
    exe = _lookup(args[0], proc.get("env") or [])
    if (spec.get("root") or {}).get("readonly"):
        mounts.readonly_root()
    _credentials(proc)
    _send(sock, "ready")
    go = sock.recv(16)
    if go != b"start":
        os._exit(0)
    _exec(proc, exe)


def _fork_in_namespaces(work: Any) -> tuple[int, int, socket.socket]:
    """(helper pid, process pid, the agent's end of its socket): a helper unshares the container's namespaces
    and forks the process, which runs work(its socket end) and becomes PID 1 of the new pid namespace."""
    parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    helper = os.fork()
    if helper == 0:
        parent.close()

        def helper_work() -> None:
            libc.unshare(INIT_NAMESPACES)
            pid = os.fork()
            if pid:
                _send(child, f"pid {pid}")
                os._exit(0)
            _child_main(lambda: work(child), child)

        _child_main(helper_work, child)
    child.close()
    first = parent.recv(256).decode(errors="replace")
    if not first.startswith("pid "):
        parent.close()
        raise ProcessError(first[6:] if first.startswith("error ") else "the container's helper failed")
    return helper, int(first[4:]), parent


@dataclass
class Waiting:
    """A container init forked before the template snapshot, in its namespaces, waiting for its container."""

    helper: int
    pid: int
    sock: socket.socket


_waiting: Waiting | None = None


def prefork_init(run_dir: str = "/run") -> None:
    """Fork the next container's init now (before the snapshot): under emulation two forks of the agent and
    the unshare cost ~0.1 s of every start. Its mount namespace is copied now, so /run is made shared first:
    the container's share, mounted under it later, propagates into the waiting init's copy."""
    global _waiting
    libc.mount("", run_dir, None, libc.MS_SHARED)
    helper, pid, sock = _fork_in_namespaces(_await_container)
    _waiting = Waiting(helper, pid, sock)


def waiting_pid() -> int | None:
    return _waiting.pid if _waiting is not None else None


def discard_waiting(run_dir: str = "/run") -> None:
    """The VM gets its container some other way (a CRIU restore): the waiting init exits, and /run is private
    again, so nothing CRIU mounts for the restored namespace propagates back into the agent's."""
    global _waiting
    if _waiting is not None:
        _waiting.sock.close()
        _waiting = None
    with contextlib.suppress(OSError):
        libc.mount("", run_dir, None, libc.MS_PRIVATE)


def _await_container(sock: socket.socket) -> None:
    """In the waiting init: the container's config (a memfd) and stdio fds arrive together, then the usual."""
    data, ancdata, _flags, _addr = sock.recvmsg(256, socket.CMSG_SPACE(8 * 4))
    if not data:
        os._exit(0)
    fds = array.array("i")
    for level, kind, raw in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(raw[: len(raw) - len(raw) % 4])
    memfd, *child_fds = fds
    with os.fdopen(memfd, "rb") as f:
        given = json.loads(f.read())
    stdio = Stdio(given["tty"], child_fds=list(child_fds))
    _init_work(given["cfg"], stdio, open_cgroup(given["layout"], given["cgroup"]), given["layout"], sock,
               joined=bool(given.get("joined")))


def _hand_over(waiting: Waiting, cfg: dict[str, Any], stdio: Stdio, cgroup: AnyCgroup,
               layout: list[dict[str, str]], joined: bool) -> bool:
    memfd = os.memfd_create("container-config", os.MFD_CLOEXEC)
    try:
        os.write(memfd, json.dumps({"cfg": cfg, "tty": stdio.tty, "cgroup": cgroup.path, "layout": layout,
                                    "joined": joined}).encode())
        os.lseek(memfd, 0, os.SEEK_SET)
        _send(waiting.sock, "container", [memfd, *stdio.child_fds])
        return True
    except OSError:
        return False  # it is gone: fork as usual
    finally:
        os.close(memfd)


def start_init(cfg: dict[str, Any], stdio: Stdio, cgroup: AnyCgroup, layout: list[dict[str, str]],
               joined: bool = False) -> Spawned:
    """Create the container: namespaces, filesystem, hostname, sysctls, limits; the process waits for start.
    The init forked before the snapshot takes it when there is one; `joined` says it is in `cgroup` already."""
    global _waiting
    waiting, _waiting = _waiting, None
    if waiting is not None and _hand_over(waiting, cfg, stdio, cgroup, layout, joined):
        helper, pid, sock = waiting.helper, waiting.pid, waiting.sock
    else:
        if waiting is not None:
            waiting.sock.close()
        helper, pid, sock = _fork_in_namespaces(lambda child: _init_work(cfg, stdio, cgroup, layout, child))
    stdio.close_child_ends()
    spawned = _collect(sock, stdio.tty, "ready")
    spawned.pid, spawned.helper = pid, helper
    return spawned


def release(spawned: Spawned, timeout: float = 30) -> None:
    """Let the init process exec, and return only once it has: a signal sent right after `start` must reach
    the container's program, not the Python that was about to become it. The socket's end in the process is
    close-on-exec, so EOF means the exec happened; a message means it failed."""
    sock = spawned.sock
    try:
        sock.send(b"start")
        sock.settimeout(timeout)
        reply = sock.recv(65536)
    except OSError as e:
        raise ProcessError(f"the container's process did not start: {e}") from e
    finally:
        sock.close()
    if reply.startswith(b"error "):
        raise ProcessError(reply[6:].decode(errors="replace"))


def start_exec(init_pid: int, proc: dict[str, Any], stdio: Stdio, cgroup: AnyCgroup) -> Spawned:
    """A process in the running container: setns into its namespaces, join its cgroup, exec."""
    parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    ns_fds = []
    try:
        for ns in ("ipc", "uts", "pid", "mnt", "cgroup"):
            ns_fds.append(os.open(f"/proc/{init_pid}/ns/{ns}", os.O_RDONLY | os.O_CLOEXEC))
    except OSError as e:
        for fd in ns_fds:
            os.close(fd)
        raise ProcessError(f"container is not running (init {init_pid}: {e.strerror})") from e
    helper = os.fork()
    if helper == 0:
        parent.close()

        def helper_work() -> None:
            cgroup.join()  # while the guest's cgroup mounts are still visible; the process inherits it
            for fd in ns_fds:
                libc.setns(fd)
            pid = os.fork()
            if pid:
                _send(child, f"pid {pid}")
                os._exit(0)
            _child_main(exec_work, child)

        def exec_work() -> None:
            _rlimits(proc)
            _stdio_in_child(stdio, child, proc.get("consoleSize"))
            args = proc.get("args") or []
            if not args:
                raise ProcessError("args must not be empty")
            exe = _lookup(args[0], proc.get("env") or [])
            _credentials(proc)
            _exec(proc, exe)

        _child_main(helper_work, child)
    for fd in ns_fds:
        os.close(fd)
    child.close()
    stdio.close_child_ends()
    # The exec'd process closes its end at execve (CLOEXEC): EOF after "pid" means it is running.
    spawned = _collect(parent, stdio.tty, "exec")
    spawned.helper = helper
    return spawned
