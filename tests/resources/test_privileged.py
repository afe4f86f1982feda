"""`docker run --privileged`: every capability, the host's devices, and the right to mount and create netdevs.

A VM-based runtime has no host devices to hand over; gVisor exposes its own small /dev. On this host runc itself
cannot start a privileged container (the bounding set lacks CAP_SYS_RESOURCE), so the baseline is unavailable and
runc's error is the evidence.
"""

from __future__ import annotations

from typing import Any

from harness.context import Ctx
from harness.scenario import scenario
from tests.resources._support import shorten, status_field

PROBED_DEVICES = ("kmsg", "mem", "loop-control", "loop0", "net/tun", "fuse", "kvm", "tty0")
"""Host devices a privileged runc container gets (where the host has them); /dev/null & co. are always there."""


@scenario("resources/privileged")
def test_privileged(ctx: Ctx) -> dict[str, Any]:
    c = ctx.run(["sleep", "600"], privileged=True)
    status = ctx.sh(c, "cat /proc/self/status")
    nodes = int(ctx.sh(c, "find /dev -type c -o -type b 2>/dev/null | wc -l").strip() or 0)
    present = ctx.sh(c, " ".join(f"[ -e /dev/{d} ] && echo {d};" for d in PROBED_DEVICES) + " true").split()
    mount = ctx.exec(c, "mkdir -p /mnt/vmp && mount -t tmpfs none /mnt/vmp && echo ok")
    netdev = ctx.exec(c, "ip link add vmpdummy0 type dummy && ip link show vmpdummy0 >/dev/null && echo ok")
    ctx.notes.update(mount_error=shorten(mount.stderr), netdev_error=shorten(netdev.stderr), device_nodes=nodes)
    return {
        "cap_eff": status_field(status, "CapEff"),
        "cap_bnd": status_field(status, "CapBnd"),
        "device_nodes": "more than 32" if nodes > 32 else "32 or fewer",
        "host_devices_present": sorted(present),
        "mount_tmpfs_works": mount.stdout.strip() == "ok",
        "dummy_netdev_works": netdev.stdout.strip() == "ok",
    }
