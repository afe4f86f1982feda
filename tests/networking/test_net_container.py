"""`docker run --net=container:A B`: B joins A's network namespace. Tried for the pairs (runc A, target B),
(target A, runc B) and (target A, target B): B must see A's addresses and reach A's loopback-only server, and A
must keep reaching a third container (a runtime that takes the namespace's interfaces over cuts A off)."""

from __future__ import annotations

from typing import Any

from harness.context import Ctx, Refused
from harness.scenario import scenario
from tests.networking._support import (
    disposable,
    fetch,
    free_port,
    ipv4_addrs,
    name,
    server_cmd,
    subnet_gateway,
    wait_serving,
)

LOOPBACK_PORT = 9090


def _pair(ctx: Ctx, net: str, third: tuple[str, int], a_rt: str, b_rt: str) -> dict[str, Any]:
    a = ctx.run(server_cmd("a-loopback", port=LOOPBACK_PORT, bind="127.0.0.1"), runtime=a_rt, network=net,
                name=name("netc-a"))
    wait_serving(ctx, a, LOOPBACK_PORT)
    a_addrs = ipv4_addrs(ctx, a)
    a_before = fetch(ctx, a, *third)
    try:
        b = ctx.run(["sleep", "600"], runtime=b_rt, network_mode=f"container:{a.id}")
    except Refused as e:  # one pair refused is an observation; the other pairs still run
        ctx.notes[f"refused A={a_rt} B={b_rt}"] = str(e)
        return {"b_starts": False, "a_reaches_third_after": fetch(ctx, a, *third)}
    b_addrs = ipv4_addrs(ctx, b)
    ctx.notes[f"addresses A={a_rt} B={b_rt}"] = {"a": a_addrs, "b": b_addrs}
    return {
        "b_starts": True,
        "b_sees_a_addresses": b_addrs == a_addrs,
        "b_addresses": len(b_addrs),
        "b_reply_from_a_loopback": fetch(ctx, b, "127.0.0.1", LOOPBACK_PORT),
        "b_reaches_third": fetch(ctx, b, *third),
        "a_reaches_third_before": a_before,
        "a_reaches_third_after": fetch(ctx, a, *third),
        "a_still_lists": ipv4_addrs(ctx, a) == a_addrs,
    }


@scenario("networking/net-container", host_sensitive=True, pairs_with_baseline=True)
def test_net_container(ctx: Ctx) -> dict[str, Any]:
    """On a disposable daemon: Docker keeps a dead container's netns file on the main daemon until its 60 s
    garbage collection, which the host snapshot would count as impact; a disposable daemon's go with it. Its
    bridges cannot forward between containers on this host (the main daemon's FORWARD policy is DROP and
    bridge-nf-call-iptables is on), so the third container runs under runc in the host's namespace and serves on
    the network's gateway address, which A reaches through the bridge without forwarding. A's server listens on
    127.0.0.1 only, so only a process in A's namespace can reach it."""
    d = disposable(ctx)
    net = d.network()
    gateway = subnet_gateway(net)[1]
    third = (gateway, free_port())
    third_c = d.run(server_cmd("third-ok", port=third[1], bind=gateway), runtime="runc", network_mode="host",
                    name=name("netc-c"))
    wait_serving(d, third_c, third[1], host=gateway)
    target = ctx.runtime
    pairs = {"runc_a+target_b": ("runc", target), "target_a+runc_b": (target, "runc"),
             "target_a+target_b": (target, target)}
    return {label: _pair(d, net.name, third, a_rt, b_rt) for label, (a_rt, b_rt) in pairs.items()}
