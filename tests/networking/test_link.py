"""`docker run --link A:alias B` on the default bridge: the alias in B's /etc/hosts, B reaching A by the alias,
and the ALIAS_* variables Docker derives from A's exposed ports and environment."""

from __future__ import annotations

from typing import Any

from harness.context import Ctx
from harness.scenario import scenario
from tests.networking._support import PORT, fetch, name, server_cmd, wait_serving

ALIAS = "web"


@scenario("networking/link")
def test_link(ctx: Ctx) -> dict[str, Any]:
    """A exposes PORT (published on loopback only, with a Docker-chosen host port: the image has no EXPOSE, and
    the SDK exposes a port only by publishing it). Addresses and names in the variables are replaced by roles."""
    a = ctx.run(server_cmd("linked-a"), name=name("link-a"), ports={f"{PORT}/tcp": ("127.0.0.1", None)})
    wait_serving(ctx, a)
    a_ip = ctx.inspect(a)["NetworkSettings"]["IPAddress"]
    b = ctx.run(["sleep", "600"], name=name("link-b"), links={a.name: ALIAS})

    hosts = ctx.sh(b, "cat /etc/hosts")
    alias_lines = [line.split() for line in hosts.splitlines() if ALIAS in line.split()[1:]]
    env = dict(line.split("=", 1) for line in ctx.sh(b, "env").splitlines() if "=" in line)
    link_env = {k: (v.replace(a_ip, "<A_IP>") if a_ip else v).replace(f"/{b.name}/", "/<B>/").replace(a.name, "<A>")
                for k, v in sorted(env.items()) if k.startswith(f"{ALIAS.upper()}_")}
    roles = {a.name: "<A>", a.id[:12]: "<A_ID>"}
    ctx.notes.update(hosts=hosts, a_ip=a_ip)
    return {
        "hosts_alias_to_a_ip": sorted(ln[0] == a_ip for ln in alias_lines),
        "hosts_names_for_a": sorted({roles.get(n, n) for ln in alias_lines for n in ln[1:]}),
        "reply_by_alias": fetch(ctx, b, ALIAS),
        "link_env": link_env,
    }
