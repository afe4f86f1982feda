"""The suite's run on a kind-vm stack's own machine, started by harness/vmhost/boot.sh.

It does the part of the host set-up that applies to a machine already holding the stack's packages (daemon.json
with the stack's runtimes only, dockerd, the test image; nothing is installed, the machine has no network) and
then `vmparity run` on this machine's stack, into the run directory the booting machine shares."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from harness import cli, provenance, stack_data
from harness.setup import daemon_config, dockerd, images

REQUEST = "request.json"
"""Written by the booting machine into the shared run directory: {"args": [vmparity run arguments]}."""


def _say(text: str) -> None:
    print(f"inside: {text}", flush=True)


def main(argv: list[str] | None = None) -> int:
    out = Path((argv if argv is not None else sys.argv[1:])[0])
    request = json.loads((out / REQUEST).read_text())
    name = stack_data.this_machine()
    if name is None:
        raise SystemExit(f"inside: {stack_data.THIS_MACHINE} names no stack: this is not a stack's machine")
    stack = stack_data.get(name)
    _say(f"stack {name}; kernel {os.uname().release}; cgroup {provenance.cgroup_mode()}")
    changed, keys = daemon_config.ensure(only=set(stack.runtimes) if stack.runtimes else None)
    _say(f"daemon.json {'written: ' + ', '.join(sorted(keys)) if changed else 'unchanged'}")
    _say(f"dockerd {dockerd.ensure(keys)}")
    client = dockerd.client(timeout=180)
    _say(f"image {images.ensure(client)}")
    _say(f"runtimes registered with dockerd: {', '.join(sorted(client.info().get('Runtimes', {})))}")
    return cli.main(["run", "--stack", name, "--run-dir", str(out), "--plain", "--no-render", *request["args"]])


if __name__ == "__main__":
    sys.exit(main())
