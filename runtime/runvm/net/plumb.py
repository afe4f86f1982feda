"""What Docker configured in the container's netns, and joining each veth to a tap with tc mirred redirects
(Kata's model): the guest NIC gets the veth's MAC, MTU, addresses and routes; frames pass veth <-> tap.

Runs in a forked child of the vm-shim: pyroute2 is large, and the shim should stay small while it waits."""

from __future__ import annotations

import contextlib
import ipaddress
from typing import Any

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

TC_H_INGRESS = 0xFFFF0000


def _kind(link: Any) -> str | None:
    info = link.get_attr("IFLA_LINKINFO")
    return info.get_attr("IFLA_INFO_KIND") if info else None


def veths(ipr: IPRoute) -> list[dict[str, Any]]:
    """The container's interfaces as Docker left them (every veth in this netns), with addresses and routes."""
    out = []
    for link in ipr.get_links():
        if _kind(link) != "veth":
            continue
        idx = link["index"]
        addrs = [f"{a.get_attr('IFA_ADDRESS')}/{a['prefixlen']}" for a in ipr.get_addr(index=idx)
                 if a["scope"] == 0]
        routes = []
        for family in (2, 10):
            for r in ipr.get_routes(family=family, oif=idx, table=254):
                dst = r.get_attr("RTA_DST")
                gw = r.get_attr("RTA_GATEWAY")
                if family == 10 and dst and ipaddress.ip_address(dst).is_link_local:
                    continue
                routes.append({"dst": f"{dst}/{r['dst_len']}" if dst else "default", "gateway": gw,
                               "family": family})
        out.append({"index": idx, "name": link.get_attr("IFLA_IFNAME"), "mac": link.get_attr("IFLA_ADDRESS"),
                    "mtu": link.get_attr("IFLA_MTU"), "addresses": addrs, "routes": routes})
    return sorted(out, key=lambda v: v["name"])


def _redirect(ipr: IPRoute, src: int, dst: int) -> None:
    """Everything arriving on src leaves through dst."""
    try:
        ipr.tc("add", "ingress", src, TC_H_INGRESS)
    except NetlinkError as e:
        if e.code != 17:  # EEXIST
            raise
    ipr.tc("add-filter", "u32", src, parent=TC_H_INGRESS, protocol=0x0003, prio=1, target=0x1,  # ETH_P_ALL
           keys=["0x0/0x0+0"], action={"kind": "mirred", "direction": "egress", "action": "redirect",
                                       "ifindex": dst})


def wire(tap: str, veth: dict[str, Any]) -> None:
    with IPRoute() as ipr:
        tap_idx = ipr.link_lookup(ifname=tap)[0]
        ipr.link("set", index=tap_idx, mtu=veth["mtu"], state="up")
        _redirect(ipr, veth["index"], tap_idx)
        _redirect(ipr, tap_idx, veth["index"])


def list_veths() -> dict[str, Any]:
    """For a forked child of the shim (it runs in the container's netns)."""
    with IPRoute() as ipr:
        return {"veths": veths(ipr)}


def wire_named(tap: str, name: str, replace: bool = False) -> bool:
    """replace: the veth is wired already, to a tap that was replaced (a pooled VM that could not be adopted);
    its ingress, with the redirect naming the old tap's index, is dropped first."""
    with IPRoute() as ipr:
        veth = next(v for v in veths(ipr) if v["name"] == name)
        if replace:
            with contextlib.suppress(NetlinkError):
                ipr.tc("del", "ingress", veth["index"], TC_H_INGRESS)
    wire(tap, veth)
    return True
