"""`docker run --net=host`: the container uses the host's network stack. It must see the host's interfaces and
addresses and share its loopback; the host's own networking must be unchanged afterwards (the harness snapshots
interfaces, addresses, routes and qdiscs around the oracle: a difference is host-impact)."""

from __future__ import annotations

import socket
import subprocess
from typing import Any

from harness.context import Ctx
from harness.scenario import scenario
from tests.networking._support import disposable, free_port, host_read, ifnames, name, server_cmd, wait_serving

EPHEMERAL = ("veth", "br-", "vmpb", "docker_gwbridge", "vx-", "ov-")
"""Interfaces that come and go with containers and daemons (other runs' too): left out of what is compared."""


def _host_view() -> tuple[set[str], set[str]]:
    """The host's interface names and its IPv4 `name address/prefix` pairs (read in the host's namespace)."""
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True, check=True).stdout
    names = {ln.split(":", 2)[1].strip().split("@", 1)[0] for ln in links.splitlines() if ln.count(":") >= 2}
    addrs = subprocess.run(["ip", "-o", "-4", "addr", "show"], capture_output=True, text=True, check=True).stdout
    return names, {f"{ln.split()[1]} {ln.split()[3]}" for ln in addrs.splitlines() if len(ln.split()) > 3}


def _stable(names: set[str]) -> set[str]:
    return {n for n in names if not n.startswith(EPHEMERAL)}


@scenario("networking/net-host", host_sensitive=True)
def test_net_host(ctx: Ctx) -> dict[str, Any]:
    """On a disposable daemon (host-networked containers are the scenario that can hurt the host). The container
    serves on a free port of the host's 127.0.0.1: with the host's stack, the host reaches it there."""
    d = disposable(ctx)
    port = free_port()
    names_before, addrs_before = _host_view()
    c = d.run(server_cmd("net-host-ok", port=port, bind="127.0.0.1"), network_mode="host", name=name("nethost"))
    wait_serving(d, c, port)
    inside_names = set(ifnames(d, c))
    inside_addrs = {" ".join(ln.split()[1:4:2]) for ln in d.sh(c, "ip -o -4 addr show").splitlines()
                    if len(ln.split()) > 3}
    inside_hostname = d.sh(c, "hostname").strip()
    names_after, addrs_after = _host_view()
    from_host = host_read(port)

    stable_host = _stable(names_before & names_after)
    stable_addrs = {a for a in addrs_before & addrs_after if a.split()[0] in stable_host}
    ctx.notes.update(inside=sorted(inside_names), host_before=sorted(names_before), inside_addrs=sorted(inside_addrs),
                     host_addrs=sorted(addrs_before))
    return {
        "sees_host_interfaces": stable_host <= inside_names,
        "stable_names_seen": sorted(_stable(inside_names) & stable_host),
        "names_not_on_host": sorted(_stable(inside_names) - names_before - names_after),
        "sees_host_addresses": stable_addrs <= inside_addrs,
        "hostname_is_hosts": inside_hostname == socket.gethostname(),
        "host_reads_via_loopback": from_host,
    }
