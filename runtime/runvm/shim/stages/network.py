"""Stage: the container's network. Once Docker's hook has put the veth in our netns, it is joined to the VM's
tap; the guest NIC gets the veth's addresses, routes and MAC. The plumbing runs in a forked child (pyroute2
stays out of the vm-shim), forked right away so that its imports overlap the hook."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from runtime.runvm.errors import RunvmError
from runtime.runvm.net import resolv
from runtime.runvm.shim import forked
from runtime.runvm.shim.constants import TAP
from runtime.runvm.sys import CLONE_NEWNET, setns
from runtime.runvm.vm import qemu

if TYPE_CHECKING:
    from runtime.runvm.shim.stages.namespaces import Namespaces

NETNS_SYSCTLS = ("net/ipv6/conf/all/disable_ipv6", "net/ipv6/conf/default/disable_ipv6")
"""What Docker's network set-up writes in the netns itself (not in the spec): the guest, whose network stack
is the container's, gets the same (no IPv6 unless the network has it, as under runc)."""


@dataclass
class Network:
    guest_nics: list[dict[str, Any]] = field(default_factory=list)
    """What the agent's net_add gets, one per NIC (only the first veth at create; later ones come by watch)."""
    nics: dict[str, dict[str, Any]] = field(default_factory=dict)
    """The resident's record, by veth name: how later changes find the guest NIC (by the veth's MAC)."""


async def plumb(own_netns: bool, spare_qemu_pid: Callable[[], int | None], hooks_task: asyncio.Task[None]) -> Network:
    """Wait for the hooks; with a netns of our own, wire its first veth to the tap (a spare's tap is first moved
    here from the spare's netns; asked when this task first runs, since the boot may have given the spare up)."""
    if not own_netns:
        await hooks_task
        return Network()
    go_r, go_w = os.pipe()
    spare_pid = spare_qemu_pid()
    tap_ns = f"/proc/{spare_pid}/ns/net" if spare_pid else None
    plumbing = asyncio.get_running_loop().create_task(
        forked.call(_plumb_first_veth, go_r, TAP, tap_ns, keep=(go_r,)))
    try:
        await hooks_task
    finally:
        with contextlib.suppress(OSError):
            os.write(go_w, b"g")
        os.close(go_w)
    try:
        first = await plumbing
    finally:
        os.close(go_r)
    if first is None:
        return Network()
    return from_veth(first, netns_sysctls())


def from_veth(first: dict[str, Any], sysctls: dict[str, str]) -> Network:
    """The guest NIC for the first veth, and the resident's record of it (which carries the veth's MAC from now
    on: that is how later changes find it)."""
    from runtime.runvm.shim.netconnect import config_of

    nic = {"guest_mac": qemu.TEMPLATE_MAC, "mac": first["mac"], "mtu": first["mtu"], "name": first["name"],
           "addresses": first["addresses"], "routes": first["routes"], "sysctls": sysctls}
    record = {**nic, "guest_mac": first["mac"], "device": "nic0", "config": config_of(first)}
    return Network([nic], {first["name"]: record})


async def rewire(net: Network) -> None:
    """After a spare failed: the veth joins the replacement VM's tap."""
    if net.guest_nics:
        await forked.call(_rewire, TAP, net.guest_nics[0]["name"])


def embedded_dns(mounts: list[dict[str, Any]], read: Callable[[str], str]) -> str | None:
    """Docker's embedded DNS address when the container's resolv.conf points at it (user networks); read(path)
    reads the file as the daemon sees it."""
    source = resolv.source_of(mounts)
    if source is None:
        return None
    try:
        return resolv.nameserver_on_loopback(read(source))
    except OSError:
        return None


def late_resolv_conf(ns: Namespaces, spec: dict[str, Any], fds: dict[str, int]) -> str | None:
    """Docker 26 and later configure the network (resolv.conf's embedded server with it) after create, not in
    a hook: when create found no embedded server, the resident looks again at start, through an fd of the
    file's directory (fds["resolv_dir"]); returns the file's name there."""
    from runtime.runvm.shim.stages.handover import inheritable

    source = resolv.source_of(spec.get("mounts") or [])
    if source is None:
        return None
    try:
        fd = ns.open_daemon_dir(os.path.dirname(source))
    except OSError:
        return None
    fds["resolv_dir"] = inheritable(fd)
    os.close(fd)
    return os.path.basename(source)


def netns_sysctls() -> dict[str, str]:
    values = {}
    for key in NETNS_SYSCTLS:
        try:
            with open(f"/proc/sys/{key}") as f:
                values[key.replace("/", ".")] = f.read().strip()
        except OSError:
            continue
    return values


def _take_tap(tap: str, tap_ns: str) -> None:
    """Best effort: when the spare's VM died before this (its tap with it), the vm-shim restores a VM of its
    own behind a new tap of the same name here, which the wiring then finds."""
    from pyroute2 import IPRoute

    here = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        there = os.open(tap_ns, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        os.close(here)
        return
    try:
        setns(there, CLONE_NEWNET)
        ipr = IPRoute()  # bound to the spare's netns for as long as it is open
        setns(here, CLONE_NEWNET)
        with ipr:
            found = ipr.link_lookup(ifname=tap)
            if not found:
                raise RunvmError(f"the pooled VM's tap {tap} is not in its netns")
            ipr.link("set", index=found[0], net_ns_pid=os.getpid())
    finally:
        os.close(here)
        os.close(there)


def _rewire(tap: str, veth: str) -> bool:
    """In a forked child (pyroute2 stays out of the vm-shim)."""
    from runtime.runvm.net import plumb as plumbmod

    return plumbmod.wire_named(tap, veth, replace=True)


def _plumb_first_veth(go_fd: int, tap: str, tap_ns: str | None) -> dict[str, Any] | None:
    """In the forked child: import pyroute2 while the hook runs, then wire the first veth to the tap (a pooled
    VM's tap is first moved here from the spare's netns)."""
    from pyroute2 import IPRoute

    from runtime.runvm.net import plumb as plumbmod

    if tap_ns:
        _take_tap(tap, tap_ns)
    os.read(go_fd, 1)
    with IPRoute() as ipr:
        found = plumbmod.veths(ipr)
        have_tap = bool(ipr.link_lookup(ifname=tap))
    if not found:
        return None
    if have_tap:  # no tap: a pooled VM that died; the replacement's tap is wired once it exists (tap_replaced)
        plumbmod.wire(tap, found[0])
    return found[0]
