"""The guest's NICs, configured from what Docker set up on the veths in the container's netns on the host.

pyroute2's asynchronous API: the agent is one asyncio loop, and the synchronous one would start another."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from pyroute2 import AsyncIPRoute
from pyroute2.netlink.exceptions import NetlinkError


async def _find(ipr: AsyncIPRoute, mac: str, timeout: float) -> int:
    """The NIC with this MAC (hot-plugged ones take a moment to appear)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        async for link in await ipr.get_links():
            if (link.get("address") or "").lower() == mac.lower():
                return link["index"]
        if loop.time() > deadline:
            raise LookupError(f"no guest NIC with MAC {mac}")
        await asyncio.sleep(0.02)


async def configure(nic: dict[str, Any], timeout: float = 10.0) -> str:
    """nic: guest_mac (the MAC QEMU gave it), mac, mtu, name, addresses ["a.b.c.d/len"], routes."""
    async with AsyncIPRoute() as ipr:
        idx = await _find(ipr, nic["guest_mac"], timeout)
        await ipr.link("set", index=idx, state="down")
        changes: dict[str, Any] = {}
        if nic.get("mac") and nic["mac"].lower() != nic["guest_mac"].lower():
            changes["address"] = nic["mac"]
        if nic.get("mtu"):
            changes["mtu"] = nic["mtu"]
        current = [link async for link in await ipr.get_links(idx)][0].get("ifname")  # noqa: RUF015
        if nic.get("name") and current != nic["name"]:
            clash = await ipr.link_lookup(ifname=nic["name"])
            if clash:
                await ipr.link("set", index=clash[0], ifname=f"old{clash[0]}")
            changes["ifname"] = nic["name"]
        if changes:
            await ipr.link("set", index=idx, **changes)
        await ipr.flush_addr(index=idx)
        for cidr in nic.get("addresses") or []:
            addr, plen = cidr.split("/")
            await ipr.addr("add", index=idx, address=addr, prefixlen=int(plen), family=10 if ":" in addr else 2)
        await ipr.link("set", index=idx, state="up")
        # gateway-less (link) routes first, so gateways are reachable when their routes go in
        for route in sorted(nic.get("routes") or [], key=lambda r: r.get("gateway") is not None):
            kw: dict[str, Any] = {"oif": idx}
            if route.get("dst") and route["dst"] != "default":
                kw["dst"] = route["dst"]
            if route.get("gateway"):
                kw["gateway"] = route["gateway"]
            else:
                kw["scope"] = 253  # link: a gateway-less route must not hide the on-link prefix
            if route.get("family") == 10:
                kw["family"] = 10
            try:
                await ipr.route("replace", **kw)
            except NetlinkError as e:
                if e.code != 17:  # a route the kernel already derived from the address
                    raise
        return [link async for link in await ipr.get_links(idx)][0].get("ifname")  # noqa: RUF015


async def remove(mac: str) -> None:
    """Before the host unplugs a NIC (or a VM has no network): nothing may keep using it."""
    async with AsyncIPRoute() as ipr:
        async for link in await ipr.get_links():
            if (link.get("address") or "").lower() == mac.lower():
                with contextlib.suppress(NetlinkError):
                    await ipr.flush_addr(index=link["index"])
                await ipr.link("set", index=link["index"], state="down")
