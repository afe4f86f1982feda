"""The guest's NICs, configured from what Docker set up on the veths in the container's netns on the host.

The commands go to iproute2 (in the guest image) as one batch: under emulation a dozen netlink round trips
through a Python netlink library cost 150-250 ms per container, iproute2 a fraction of that, and its process is
resident from before the template snapshot (ipbatch.py), so not even its start is paid per container."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import ipaddress
import os
import socket
import struct
from typing import Any

from runtime.agent.ipbatch import IpBatch

IP_BATCH = IpBatch()
SYS_NET = "/sys/class/net"


def _by_mac() -> dict[str, str]:
    found = {}
    for name in os.listdir(SYS_NET):
        try:
            with open(os.path.join(SYS_NET, name, "address")) as f:
                found[f.read().strip().lower()] = name
        except OSError:
            continue
    return found


def run_batch(commands: list[str]) -> None:
    """Run iproute2 commands through the resident batch process; raise with ip's own words when one fails."""
    IP_BATCH.run(commands)


def _operstate(name: str) -> str:
    try:
        with open(os.path.join(SYS_NET, name, "flags")) as f:
            return "up" if int(f.read(), 16) & 1 else "down"
    except OSError:
        return "unknown"


def _has_addresses(name: str) -> bool:
    """Whether the interface has an IPv4 address (SIOCGIFADDR fails when it has none)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            fcntl.ioctl(s.fileno(), 0x8915, struct.pack("256s", name.encode()[:15]))  # SIOCGIFADDR
            return True
        except OSError:
            return False


def _network_of(cidr: str) -> str:
    return str(ipaddress.ip_interface(cidr).network)


async def _find(mac: str, timeout: float) -> str:
    """The NIC with this MAC (hot-plugged ones take a moment to appear)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        name = _by_mac().get(mac.lower())
        if name:
            return name
        if loop.time() > deadline:
            raise LookupError(f"no guest NIC with MAC {mac}")
        await asyncio.sleep(0.02)


def write_sysctls(values: dict[str, str]) -> None:
    """The netns's own settings (Docker's, not the spec's), e.g. IPv6 off: before the NIC comes up."""
    for key, value in values.items():
        if not key.startswith("net."):
            continue
        with contextlib.suppress(OSError), open("/proc/sys/" + key.replace(".", "/"), "w") as f:
            f.write(value)


async def configure(nic: dict[str, Any], timeout: float = 10.0) -> str:
    """nic: guest_mac (the MAC QEMU gave it), mac, mtu, name, addresses ["a.b.c.d/len"], routes, sysctls."""
    write_sysctls(nic.get("sysctls") or {})
    current = await _find(nic["guest_mac"], timeout)
    name = nic.get("name") or current
    fresh = _operstate(current) == "down" and not _has_addresses(current)
    cmds = [] if fresh else [f"link set dev {current} down"]
    if name != current and os.path.exists(os.path.join(SYS_NET, name)):
        cmds += [f"link set dev {name} down", f"link set dev {name} name old-{name}"]
    change = []
    if nic.get("mac") and nic["mac"].lower() != nic["guest_mac"].lower():
        change.append(f"address {nic['mac']}")
    if nic.get("mtu"):
        change.append(f"mtu {int(nic['mtu'])}")
    if name != current:
        change.append(f"name {name}")
    if change:
        cmds.append(f"link set dev {current} {' '.join(change)}")
    if not fresh:
        cmds.append(f"addr flush dev {name}")
    cmds += [f"addr add {cidr} dev {name}" for cidr in nic.get("addresses") or []]
    cmds.append(f"link set dev {name} up")
    connected = {_network_of(cidr) for cidr in nic.get("addresses") or []}
    # gateway-less (link) routes first, so gateways are reachable when their routes go in; the kernel already
    # made the routes of the addresses' own subnets
    for route in sorted(nic.get("routes") or [], key=lambda r: r.get("gateway") is not None):
        if not route.get("gateway") and route.get("dst") in connected:
            continue
        family = "-6 " if route.get("family") == 10 else ""
        dst = route.get("dst") or "default"
        via = f" via {route['gateway']}" if route.get("gateway") else " scope link"
        cmds.append(f"{family}route replace {dst} dev {name}{via}")
    run_batch(cmds)
    return name


async def remove(mac: str) -> None:
    """Before the host unplugs a NIC (or a VM has no network): nothing may keep using it."""
    name = _by_mac().get(mac.lower())
    if name:
        run_batch([f"addr flush dev {name}", f"link set dev {name} down"])


async def warm() -> None:
    """Before the template snapshot: the resident iproute2 started, and its first batch run."""
    run_batch(["link show dev lo"])
