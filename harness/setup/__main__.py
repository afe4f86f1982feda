"""`python -m harness.setup`: the Python half of scripts/setup-host. Idempotent; prints one line per step."""

from __future__ import annotations

import argparse
import os
import sys

from harness.setup import criu, daemon_config, dockerd, images


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="setup-host", description=__doc__)
    ap.add_argument("--no-guest", action="store_true", help="skip building runvm's guest kernel and image")
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("setup: must run as root (daemon.json, dockerd, network namespaces)", file=sys.stderr)
        return 1
    changed, keys = daemon_config.ensure()
    print(f"setup: daemon.json {'updated: ' + ', '.join(sorted(keys)) if changed else 'unchanged'}")
    print(f"setup: criu {criu.ensure()}")  # before dockerd, whose PATH must lead to it
    print(f"setup: dockerd {dockerd.ensure(keys)}")
    client = dockerd.client(timeout=120)
    print(f"setup: image {images.ensure(client)}")
    if not args.no_guest:
        from runtime.guest import build

        print(f"setup: runvm guest {build.ensure(log=print)}")
        import subprocess

        from harness import paths

        built = subprocess.run([str(paths.RUNVM_BIN), "template", "build"], capture_output=True, text=True)
        if built.returncode != 0:
            print(f"setup: runvm template build failed:\n{built.stderr[-3000:]}", file=sys.stderr)
            return 1
        print(f"setup: runvm template {built.stdout.strip()}")
        pruned = subprocess.run([str(paths.RUNVM_BIN), "pool", "prune"], capture_output=True, text=True)
        print(f"setup: runvm pool prune {pruned.stdout.strip() or pruned.stderr.strip()}")
    runtimes = sorted(client.info().get("Runtimes", {}))
    print(f"setup: runtimes registered with dockerd: {', '.join(runtimes)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
