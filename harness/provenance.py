"""Where a run happened and with what, so two matrices can be compared and a cell traced back."""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness import paths
from harness.runtimes import RuntimeInfo
from harness.setup import criu, dockerd
from harness.stacks import Endpoint


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _first_line(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
        return (out.stdout or out.stderr).strip().splitlines()[0]
    except (OSError, subprocess.TimeoutExpired, IndexError):
        return "unknown"


def _os_release() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    return "unknown"


def _virt_flags() -> bool:
    try:
        flags = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        return False
    return bool(flags & {"vmx", "svm"})


def cgroup_mode() -> str:
    if Path("/sys/fs/cgroup/cgroup.controllers").exists():
        return "v2 (unified)"
    if Path("/sys/fs/cgroup/unified").is_dir():
        return "v1 (hybrid)"
    return "v1 (legacy)"


def dockerd_criu() -> dict[str, Any]:
    """The criu runc gets under the host's dockerd: the first `criu` on dockerd's own PATH (runc inherits it through
    containerd and the shim), its `--version`, and which PATH that was (dockerd's, or ours where its environment
    cannot be read)."""
    pid, env = dockerd.running_environ()
    path = (env or os.environ).get("PATH", "")
    found = shutil.which("criu", path=path)
    return {"path": found, "version": criu.version(found) if found else None,
            "resolved": os.path.realpath(found) if found else None,
            "from_path_of": f"dockerd (pid {pid})" if env is not None else "the suite (dockerd's environment unread)"}


def suite_commit() -> dict[str, Any]:
    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", "-C", str(paths.REPO), *args], capture_output=True, text=True,
                                  timeout=10).stdout.strip()
        except OSError:
            return ""

    commit = git("rev-parse", "HEAD")
    if not commit and paths.SUITE_SNAPSHOT.exists():  # a copy of the tree on another machine, without git
        return dict(json.loads(paths.SUITE_SNAPSHOT.read_text()))
    return {"commit": commit or "uncommitted", "dirty": bool(git("status", "--porcelain"))}


def stack_criu(endpoint: Endpoint) -> dict[str, Any]:
    """The criu a container stack's runc finds: its own package's, on the stack's PATH."""
    found = subprocess.run([*endpoint.launcher, "sh", "-c", "command -v criu"], capture_output=True, text=True,
                           timeout=20).stdout.strip()
    return {"path": found or None, "version": _first_line([*endpoint.launcher, found, "--version"]) if found
            else None, "resolved": None, "from_path_of": f"the {endpoint.stack} stack"}


def collect(docker_info: dict[str, Any], docker_version: dict[str, Any], runtimes: dict[str, RuntimeInfo],
            options: dict[str, Any], endpoint: Endpoint | None = None) -> dict[str, Any]:
    on_host = endpoint is None or not endpoint.launcher
    return {
        "stack": {"name": endpoint.stack, "kind": endpoint.kind, "components": endpoint.versions,
                  "packages": endpoint.packages, "image": endpoint.image, "docker_url": endpoint.docker_url}
        if endpoint is not None else None,
        "host": {
            "hostname": platform.node(), "kernel": platform.release(), "arch": platform.machine(),
            "distro": _os_release(), "cgroup": cgroup_mode(), "cpus": os.cpu_count(),
            "dev_kvm": Path("/dev/kvm").exists(), "cpu_virt_flags": _virt_flags(),
        },
        "docker": {
            "server": docker_version.get("Version"), "api": docker_version.get("ApiVersion"),
            "containerd": next((f"containerd {c.get('Version')}" for c in docker_version.get("Components") or []
                                if c.get("Name") == "containerd"), None) or _first_line(["containerd", "--version"]),
            "containerd_commit": docker_info.get("ContainerdCommit", {}).get("ID"),
            "runc_commit": docker_info.get("RuncCommit", {}).get("ID"),
            "storage_driver": docker_info.get("Driver"), "cgroup_driver": docker_info.get("CgroupDriver"),
            "cgroup_version": docker_info.get("CgroupVersion"),
            "experimental": docker_info.get("ExperimentalBuild"),
            "default_runtime": docker_info.get("DefaultRuntime"),
            "criu": dockerd_criu() if on_host or endpoint is None else stack_criu(endpoint),
        },
        "runtimes": {r.name: {"path": r.path, "args": r.args, "version": r.version} for r in runtimes.values()},
        "suite": suite_commit(),
        "started": now(),
        "finished": None,
        "options": options,
    }
