#!/usr/bin/env python3
"""A runc wrapper that misbehaves on purpose, so the suite's own tests can prove how the harness classifies it.

Registered only with a disposable dockerd (tests/suite/test_faults.py), as `runtimeArgs: ["--vmp-fault=MODE"]`.
Every command goes to the real runc; at `create` the chosen fault is added:

  hang-create    never answers `create` (a hung runtime)
  leak-process   after a good create, leaves a detached process in the container's cgroup that outlives the
                 container, as a VMM a runtime forgot would (it stays in the cgroup the runtime put it in)
  leak-shim      after a good create, leaves a detached process the host sees as the container's shim
                 (argv `containerd-shim-runc-v2 -namespace moby -id <container id>`), as a shim that outlives
                 its container is seen
  write-sysctl   after a good create, changes the host's vm.swappiness (the test puts it back)

Standard library only: the shim runs it with the system python3.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from pathlib import Path

RUNC = "runc"
CGROUP_ROOT = Path("/sys/fs/cgroup")


def _command(args: list[str]) -> tuple[str | None, list[str]]:
    """runc's subcommand and what follows it (global flags come first, `--flag value` or `--flag=value`)."""
    valued = {"--root", "--log", "--log-format", "--criu", "--rootless"}
    i = 0
    while i < len(args):
        a = args[i]
        if a.startswith("-"):
            i += 1 if "=" in a or a not in valued else 2
            continue
        return a, args[i + 1:]
    return None, []


def _bundle_and_id(rest: list[str]) -> tuple[Path, str]:
    bundle = Path(".")
    for i, a in enumerate(rest):
        if a in ("--bundle", "-b") and i + 1 < len(rest):
            bundle = Path(rest[i + 1])
        elif a.startswith("--bundle="):
            bundle = Path(a.split("=", 1)[1])
    return bundle, rest[-1]


def _detach() -> bool:
    """Double fork: True in the grandchild (reparented away from the shim, in its own session)."""
    if os.fork() != 0:
        os.wait()
        return False
    os.setsid()
    if os.fork() != 0:
        os._exit(0)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    return True


def _join_cgroups(cgroups_path: str) -> None:
    rel = cgroups_path.strip("/")
    targets = [ctrl / rel / "cgroup.procs" for ctrl in CGROUP_ROOT.iterdir()] + [CGROUP_ROOT / rel / "cgroup.procs"]
    for procs in targets:
        if procs.exists():
            with contextlib.suppress(OSError):
                procs.write_text(str(os.getpid()))


def main() -> int:
    args = sys.argv[1:]
    mode = next((a.split("=", 1)[1] for a in args if a.startswith("--vmp-fault=")), "")
    args = [a for a in args if not a.startswith("--vmp-fault=")]
    command, rest = _command(args)
    if command != "create" or not mode:
        os.execvp(RUNC, [RUNC, *args])
    if mode == "hang-create":
        time.sleep(3600)
        return 1
    pid = os.fork()
    if pid == 0:
        os.execvp(RUNC, [RUNC, *args])
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        return code
    bundle, cid = _bundle_and_id(rest)
    if mode == "leak-process":
        spec = json.loads((bundle / "config.json").read_text())
        if _detach():
            _join_cgroups(spec.get("linux", {}).get("cgroupsPath", ""))
            time.sleep(3600)
            os._exit(0)
    elif mode == "leak-shim":
        if _detach():
            os.execv(sys.executable, ["containerd-shim-runc-v2", "-c", "import time; time.sleep(3600)",
                                      "-namespace", "moby", "-id", cid])
    elif mode == "write-sysctl":
        p = Path("/proc/sys/vm/swappiness")
        p.write_text(str((int(p.read_text()) + 7) % 100))
    return 0


if __name__ == "__main__":
    sys.exit(main())
