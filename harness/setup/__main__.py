"""`python -m harness.setup`: the Python half of scripts/setup-host. Idempotent; prints one line per step."""

from __future__ import annotations

import argparse
import os
import sys

from harness import stack_data, stacks
from harness.setup import criu, daemon_config, dockerd, images, runtime_prep


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="setup-host", description=__doc__)
    ap.add_argument("--no-prepare", action="store_true",
                    help="skip the runtimes' own preparation (runtimes/*.yaml: prepare), e.g. building a guest")
    ap.add_argument("--no-stacks", action="store_true",
                    help="do not build or start the container stacks (stacks/*.yaml, kind: container)")
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("setup: must run as root (daemon.json, dockerd, network namespaces)", file=sys.stderr)
        return 1
    print(f"setup: {runtime_prep.install_packages()}")  # before daemon.json, which registers what is installed
    changed, keys = daemon_config.ensure()
    print(f"setup: daemon.json {'updated: ' + ', '.join(sorted(keys)) if changed else 'unchanged'}")
    print(f"setup: criu {criu.ensure()}")  # before dockerd, whose PATH must lead to it
    print(f"setup: dockerd {dockerd.ensure(keys)}")
    client = dockerd.client(timeout=120)
    print(f"setup: image {images.ensure(client)}")
    if not args.no_prepare:
        runtime_prep.prepare()
    runtimes = sorted(client.info().get("Runtimes", {}))
    print(f"setup: runtimes registered with dockerd: {', '.join(runtimes)}")
    if not args.no_stacks:
        for stack in stack_data.load().values():
            if stack.kind == stack_data.CONTAINER:
                ep = stacks.up(stack, log=lambda line: print(f"setup: {line}"))
                shown = ", ".join(f"{k} {v}" for k, v in ep.versions.items())
                print(f"setup: stack {stack.name} up on {ep.docker_url}: {shown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
