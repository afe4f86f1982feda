"""`docker network connect` / `disconnect` on a running container: the new network's interface appears and goes,
and traffic to a peer on that network follows it."""

from __future__ import annotations

import time
from typing import Any

from harness.context import Ctx, refusals
from harness.scenario import scenario
from tests.networking._support import fetch, in_subnet, ip_on, ipv4_addrs, name, server_cmd, subnet_of, wait_serving

SETTLE_S = 5
"""How long the new network's address may take to show up (or go) inside: a VM runtime hot-plugs a NIC."""


def _addrs_when(ctx: Ctx, c: Any, subnet: str, present: bool) -> list[str]:
    """The container's IPv4 addresses once an address in `subnet` is (or is no longer) listed, or at the deadline."""
    deadline = time.monotonic() + SETTLE_S
    while True:
        addrs = ipv4_addrs(ctx, c)
        if in_subnet(addrs, subnet) == present or time.monotonic() > deadline:
            return addrs
        time.sleep(0.25)


@scenario("networking/network-connect", pairs_with_baseline=True)
def test_network_connect(ctx: Ctx) -> dict[str, Any]:
    """C (the runtime under test) starts on N1; N2 is connected and disconnected at run time. The peer on N2 runs
    under runc so that the cell measures C alone."""
    n1, n2 = ctx.network(), ctx.network()
    sub2 = subnet_of(n2)
    peer = ctx.run(server_cmd("peer-on-n2"), runtime="runc", network=n2.name, name=name("peer"))
    wait_serving(ctx, peer)
    peer_ip = ip_on(ctx, peer, n2.name)
    c = ctx.run(["sleep", "600"], network=n1.name)
    before = ipv4_addrs(ctx, c)

    with refusals("docker network connect"):
        n2.connect(c)
    connected = _addrs_when(ctx, c, sub2, present=True)
    docker_ip = ip_on(ctx, c, n2.name)
    by_name = fetch(ctx, c, peer.name)
    by_ip = fetch(ctx, c, peer_ip)

    with refusals("docker network disconnect"):
        n2.disconnect(c)
    after = _addrs_when(ctx, c, sub2, present=False)
    gone = fetch(ctx, c, peer_ip, timeout=1)
    ctx.notes.update(addresses={"before": before, "connected": connected, "after": after},
                     n2_subnet=sub2, docker_ip_on_n2=docker_ip)
    return {
        "connected": {
            "ipv4_addresses": len(connected), "address_in_n2_subnet": in_subnet(connected, sub2),
            "lists_dockers_address": any(a.split("/")[0] == docker_ip for a in connected),
            "peer_reply_by_name": by_name, "peer_reply_by_ip": by_ip,
        },
        "disconnected": {
            "ipv4_addresses": len(after), "address_in_n2_subnet": in_subnet(after, sub2),
            "peer_reply_by_ip": gone,
        },
        "ipv4_addresses_before": len(before),
    }
