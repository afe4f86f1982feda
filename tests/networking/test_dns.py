"""Names on a user-defined network: Docker's embedded DNS answers each container's name with its address, and
the address it answers is reachable."""

from __future__ import annotations

from typing import Any

from harness.context import Ctx
from harness.scenario import scenario
from tests.networking._support import fetch, ip_on, name, resolve, server_cmd, wait_serving


def _nameserver(ctx: Ctx, c: Any) -> list[str]:
    out = ctx.sh(c, "cat /etc/resolv.conf")
    return sorted(line.split()[1] for line in out.splitlines() if line.startswith("nameserver "))


@scenario("networking/dns")
def test_dns(ctx: Ctx) -> dict[str, Any]:
    """Both containers run under the runtime under test, each answering with its own role, on an internal
    network; only the two containers' own names are ever looked up (unknown names go to the host's resolvers)."""
    net = ctx.network()
    a = ctx.run(server_cmd("i-am-a"), network=net.name, name=name("dns-a"))
    b = ctx.run(server_cmd("i-am-b"), network=net.name, name=name("dns-b"))
    wait_serving(ctx, a)
    wait_serving(ctx, b)
    ips = {"a": ip_on(ctx, a, net.name), "b": ip_on(ctx, b, net.name)}
    seen: dict[str, Any] = {}
    for me, me_c, other, peer in (("a", a, "b", b), ("b", b, "a", a)):
        answers = resolve(ctx, me_c, peer.name)
        seen[f"{me}_resolves_{other}"] = {
            "answers": len(answers),
            "matches_docker_ip": answers == [ips[other]],
            "reply_by_name": fetch(ctx, me_c, peer.name),
        }
        ctx.notes[f"{me}_lookup_{other}"] = answers
    ctx.notes["docker_ips"] = ips
    seen["nameservers"] = _nameserver(ctx, a)
    return seen
