"""`docker run --privileged`: every capability, the host's devices, and the right to mount and create netdevs.

A VM-based runtime has no host devices to hand over; gVisor exposes its own small /dev. Where runc itself cannot start a
privileged container (a host whose bounding set lacks a capability, e.g. CAP_SYS_RESOURCE), the baseline is
unavailable and each target is judged against what Docker documents for --privileged instead.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness.context import Ctx
from harness.documented import Check
from harness.hostlacks import CAP_NAMES
from harness.scenario import scenario
from tests.resources._support import shorten, status_field

PROBED_DEVICES = ("kmsg", "mem", "loop-control", "loop0", "net/tun", "fuse", "kvm", "tty0")
"""Host devices a privileged runc container gets (where the host has them); /dev/null & co. are always there."""


BUNDLES = ("/run/docker/containerd/daemon/io.containerd.runtime.v2.task/moby",
           "/run/containerd/io.containerd.runtime.v2.task/moby")
"""Where containerd keeps the bundle Docker wrote (dockerd-managed containerd first, the system one second)."""

DOCUMENTED = [
    Check("every capability Docker grants is effective", lambda o: o["caps_not_effective"] == []),
    Check("the host's devices are present", lambda o: o["host_devices_missing"] == []),
    Check("mounting a filesystem works", lambda o: o["mount_tmpfs_works"]),
    Check("creating a network device works", lambda o: o["dummy_netdev_works"]),
]
"""docs.docker.com, `docker run --privileged`: all capabilities, access to all host devices, no mount or device
restrictions from seccomp, AppArmor or the device cgroup."""


def _granted(container_id: str) -> list[str] | None:
    """The capabilities Docker put in the container's OCI spec (its "all" differs between Docker versions)."""
    for root in BUNDLES:
        try:
            spec = json.loads(Path(root, container_id, "config.json").read_text())
        except (OSError, ValueError):
            continue
        return list(spec.get("process", {}).get("capabilities", {}).get("effective") or [])
    return None


def _missing(granted: list[str] | None, cap_eff: str) -> list[str] | str:
    if granted is None:
        return "the OCI spec Docker wrote was not found"
    try:
        eff = int(cap_eff, 16)
    except ValueError:
        return f"CapEff unreadable: {cap_eff}"
    bits = {f"CAP_{n.upper()}": i for i, n in enumerate(CAP_NAMES)}
    return sorted(c for c in granted if c not in bits or not eff >> bits[c] & 1)


def _host_devices() -> list[str]:
    return sorted(d for d in PROBED_DEVICES if Path("/dev", d).exists())


@scenario("resources/privileged", documented=DOCUMENTED)
def test_privileged(ctx: Ctx) -> dict[str, Any]:
    c = ctx.run(["sleep", "600"], privileged=True)
    status = ctx.sh(c, "cat /proc/self/status")
    granted = _granted(c.id)
    nodes = int(ctx.sh(c, "find /dev -type c -o -type b 2>/dev/null | wc -l").strip() or 0)
    present = ctx.sh(c, " ".join(f"[ -e /dev/{d} ] && echo {d};" for d in PROBED_DEVICES) + " true").split()
    mount = ctx.exec(c, "mkdir -p /mnt/vmp && mount -t tmpfs none /mnt/vmp && echo ok")
    netdev = ctx.exec(c, "ip link add vmpdummy0 type dummy && ip link show vmpdummy0 >/dev/null && echo ok")
    ctx.notes.update(mount_error=shorten(mount.stderr), netdev_error=shorten(netdev.stderr), device_nodes=nodes)
    cap_eff = status_field(status, "CapEff")
    return {
        "caps_not_effective": _missing(granted, cap_eff),
        "host_devices_missing": sorted(set(_host_devices()) - set(present)),
        "cap_eff": cap_eff,
        "cap_bnd": status_field(status, "CapBnd"),
        "device_nodes": "more than 32" if nodes > 32 else "32 or fewer",
        "host_devices_present": sorted(present),
        "mount_tmpfs_works": mount.stdout.strip() == "ok",
        "dummy_netdev_works": netdev.stdout.strip() == "ok",
    }
