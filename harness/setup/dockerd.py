"""Keep the host's dockerd running with the current daemon.json (no systemd on these machines)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import docker

from harness import paths

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
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return None
    return pid if comm == "dockerd" else None


def _log_tail(lines: int = 40) -> str:
    try:
        return "\n".join(paths.DOCKERD_LOG.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def start(timeout: float = 60) -> None:
    paths.DOCKERD_LOG.parent.mkdir(parents=True, exist_ok=True)
    with open(paths.DOCKERD_LOG, "ab") as log:
        proc = subprocess.Popen(["dockerd"], stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                start_new_session=True, close_fds=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if is_up():
            return
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    raise SystemExit(f"setup: dockerd did not come up (exit status {proc.poll()}); "
                     f"last lines of {paths.DOCKERD_LOG}:\n{_log_tail()}")


def stop(timeout: float = 30) -> None:
    pid = _pid()
    if pid is None:
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
        time.sleep(0.2)
    if Path(f"/proc/{pid}").exists():
        raise SystemExit(f"setup: dockerd (pid {pid}) did not stop within {timeout}s")


def ensure(config_changed: set[str]) -> str:
    """Start dockerd if needed; reload or restart it when daemon.json changed. Returns what it did."""
    if not is_up():
        start()
        return "started"
    if not config_changed:
        return "running"
    if config_changed <= RELOADABLE and (pid := _pid()):
        os.kill(pid, signal.SIGHUP)
        time.sleep(0.5)
        return "reloaded"
    if _pid() is None:
        raise SystemExit("setup: daemon.json changed in a way that needs a dockerd restart, but the running "
                         f"dockerd was not started from {paths.DOCKERD_PIDFILE}; restart it yourself")
    stop()
    start()
    return "restarted"
