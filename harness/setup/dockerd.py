"""Keep the host's dockerd running with the current daemon.json (no systemd on these machines), and with the criu
that harness/setup/criu.py installs first on its PATH: runc, run by containerd and its shim with dockerd's
environment, looks criu up there for `docker checkpoint`."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time

import docker
import psutil

from harness import paths
from harness.setup import criu
from harness.waiting import WaitTimedOut, wait_for

RELOADABLE = {"runtimes", "default-runtime", "debug", "labels", "live-restore"}


def client(timeout: int = 5) -> docker.DockerClient:
    return docker.DockerClient(base_url=f"unix://{paths.DOCKER_SOCK}", timeout=timeout)


def is_up() -> bool:
    try:
        return bool(client(timeout=3).ping())
    except Exception:
        return False


def _pid() -> int | None:
    try:
        pid = int(paths.DOCKERD_PIDFILE.read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        return pid if psutil.Process(pid).name() == "dockerd" else None
    except psutil.Error:
        return None


def environ(pid: int) -> dict[str, str] | None:
    """A process's environment as it was started, or None where it cannot be read."""
    try:
        return dict(psutil.Process(pid).environ())
    except psutil.Error:
        return None


def running_environ() -> tuple[int | None, dict[str, str] | None]:
    """The host dockerd's pid (from its pidfile) and the environment it was started with (None where unknown)."""
    pid = _pid()
    return pid, environ(pid) if pid else None


def criu_first(env: dict[str, str]) -> bool:
    """Is the installed criu's directory the first entry of this environment's PATH?"""
    return (env.get("PATH") or "").split(":")[0] == str(criu.bin_dir())


def dockerd_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment dockerd starts with: ours, with the installed criu's directory first on PATH."""
    env = dict(os.environ if base is None else base)
    env["PATH"] = criu.path_with_first(str(criu.bin_dir()), env.get("PATH"))
    return env


def _log_tail(lines: int = 40) -> str:
    try:
        return "\n".join(paths.DOCKERD_LOG.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def start(timeout: float = 60) -> None:
    paths.DOCKERD_LOG.parent.mkdir(parents=True, exist_ok=True)
    with open(paths.DOCKERD_LOG, "ab") as log:
        proc = subprocess.Popen(["dockerd"], stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=dockerd_env(),
                                start_new_session=True, close_fds=True)
    with contextlib.suppress(WaitTimedOut):
        wait_for(lambda: is_up() or proc.poll() is not None, "dockerd answering or exiting", timeout, interval=0.2)
    if is_up():
        return
    raise SystemExit(f"setup: dockerd did not come up (exit status {proc.poll()}); "
                     f"last lines of {paths.DOCKERD_LOG}:\n{_log_tail()}")


def stop(timeout: float = 30) -> None:
    pid = _pid()
    if pid is None:
        return
    try:
        proc = psutil.Process(pid)
        proc.terminate()
    except psutil.NoSuchProcess:
        return
    _gone, still = psutil.wait_procs([proc], timeout=timeout)
    if still:
        raise SystemExit(f"setup: dockerd (pid {pid}) did not stop within {timeout}s")


def ensure(config_changed: set[str]) -> str:
    """Start dockerd if needed; reload or restart it when daemon.json changed, restart it when it was started
    without the installed criu first on its PATH (a SIGHUP does not change a process's environment). Returns what
    it did."""
    if not is_up():
        start()
        return "started"
    pid, env = running_environ()
    if env is not None and not criu_first(env):
        stop()
        start()
        return f"restarted: it was running without {criu.bin_dir()} first on its PATH"
    note = "" if env is not None else (f" (not started from {paths.DOCKERD_PIDFILE}, so its PATH is unchecked: "
                                       f"without {criu.bin_dir()} first on it, runc uses the host's criu)")
    if not config_changed:
        return "running" + note
    if config_changed <= RELOADABLE and pid:
        os.kill(pid, signal.SIGHUP)
        time.sleep(0.5)
        return "reloaded" + note
    if pid is None:
        raise SystemExit("setup: daemon.json changed in a way that needs a dockerd restart, but the running "
                         f"dockerd was not started from {paths.DOCKERD_PIDFILE}; restart it yourself")
    stop()
    start()
    return "restarted"
