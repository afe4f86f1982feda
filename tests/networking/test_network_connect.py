"""`docker network connect` / `disconnect` on a running container: the new network's interface appears and goes,
and traffic to a peer on that network follows it.

Scripts run their next command as soon as `docker network connect` returns, so the oracle looks at that moment
(is the address listed? does the peer answer?) and again once the address has had time to show up (or go). How
long that took is kept in notes; the observation says whether it was there when the command returned.
"""

from __future__ import annotations

import time
from typing import Any

from harness.context import Ctx, refusals
from harness.scenario import scenario
from harness.waiting import poll
from tests.networking._support import fetch, in_subnet, ip_on, ipv4_addrs, name, server_cmd, subnet_of, wait_serving

SETTLE_S = 10
"""How long the new network's address may take to show up (or go) inside before it counts as never: a VM runtime
hot-plugs a NIC. Whether it was there at once is observed separately."""
AT_RETURN_TIMEOUT_S = 1
"""The peer probe made right when the command returns: one short attempt, as a script's next command would make."""


def _settle(ctx: Ctx, c: Any, subnet: str, present: bool, returned_at: float, what: str) -> dict[str, Any]:
    """Wait until an address in `subnet` is (or is no longer) listed; the addresses then, and when it happened."""
    polled = poll(lambda: ipv4_addrs(ctx, c), lambda addrs: in_subnet(addrs, subnet) == present, timeout=SETTLE_S,
                  interval=0.25)
    ctx.notes[f"{what}_settled"] = {**polled.note(),
                                    "seconds_after_command_returned": round(time.monotonic() - returned_at, 2)}
    return {"addrs": polled.value, "reached": polled.reached}


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
    returned = time.monotonic()
    at_connect = ipv4_addrs(ctx, c)
    reply_at_connect = fetch(ctx, c, peer_ip, timeout=AT_RETURN_TIMEOUT_S)
    connected = _settle(ctx, c, sub2, True, returned, "connect")
    docker_ip = ip_on(ctx, c, n2.name)
    by_name = fetch(ctx, c, peer.name)
    by_ip = fetch(ctx, c, peer_ip)

    with refusals("docker network disconnect"):
        n2.disconnect(c)
    returned = time.monotonic()
    at_disconnect = ipv4_addrs(ctx, c)
    reply_at_disconnect = fetch(ctx, c, peer_ip, timeout=AT_RETURN_TIMEOUT_S)
    after = _settle(ctx, c, sub2, False, returned, "disconnect")
    gone = fetch(ctx, c, peer_ip, timeout=1)
    ctx.notes.update(addresses={"before": before, "at_connect": at_connect, "connected": connected["addrs"],
                                "at_disconnect": at_disconnect, "after": after["addrs"]},
                     n2_subnet=sub2, docker_ip_on_n2=docker_ip)
    return {
        "when_connect_returned": {
            "address_in_n2_subnet": in_subnet(at_connect, sub2),
            "peer_reply_by_ip": reply_at_connect,
        },
        "connected": {
            "address_listed_within_10s": connected["reached"],
            "ipv4_addresses": len(connected["addrs"]), "address_in_n2_subnet": in_subnet(connected["addrs"], sub2),
            "lists_dockers_address": any(a.split("/")[0] == docker_ip for a in connected["addrs"]),
            "peer_reply_by_name": by_name, "peer_reply_by_ip": by_ip,
        },
        "when_disconnect_returned": {
            "address_in_n2_subnet": in_subnet(at_disconnect, sub2),
            "peer_reply_by_ip": reply_at_disconnect,
        },
        "disconnected": {
            "address_gone_within_10s": after["reached"],
            "ipv4_addresses": len(after["addrs"]), "address_in_n2_subnet": in_subnet(after["addrs"], sub2),
            "peer_reply_by_ip": gone,
        },
        "ipv4_addresses_before": len(before),
    }
