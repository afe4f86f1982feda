"""The host set-up's part for each described runtime (runtimes/*.yaml): its Debian packages and its own
preparation commands. Nothing here names a runtime; a runtime's file says what it needs."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable

from harness import runtime_data

APT_LOG = "/tmp/vmparity-apt.log"


def _installed(package: str) -> bool:
    r = subprocess.run(["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True)
    return r.returncode == 0 and "install ok installed" in r.stdout


def missing_packages() -> list[str]:
    wanted = dict.fromkeys(p for r in runtime_data.load().values() for p in r.packages)
    return [p for p in wanted if not _installed(p)]


def install_packages() -> str:
    missing = missing_packages()
    if not missing:
        return "runtime packages installed"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    with open(APT_LOG, "a") as log:
        for argv in (["apt-get", "update", "-q"],
                     ["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing]):
            if subprocess.run(argv, stdout=log, stderr=subprocess.STDOUT, env=env).returncode != 0:
                raise SystemExit(f"setup: `{' '.join(argv)}` failed for the runtimes' packages; see {APT_LOG}")
    return f"installed {', '.join(missing)}"


def prepare(log: Callable[[str], None] = print) -> None:
    """Each registered runtime's prepare commands, in column order; a failure names the runtime and command."""
    for r in runtime_data.load().values():
        if not r.prepare or r.parent is not None or (r.path is not None and r.registration is None):
            continue
        for template in r.prepare:
            argv = r.expand(template)
            done = subprocess.run(argv, capture_output=True, text=True)
            if done.returncode != 0:
                raise SystemExit(f"setup: preparing {r.name} failed: `{' '.join(argv)}` exited {done.returncode}:\n"
                                 f"{(done.stderr or done.stdout)[-3000:]}")
            for line in (done.stdout.strip() or "done").splitlines():
                log(f"setup: {r.name}: {line}")
