"""`docker run -p 127.0.0.1:PORT:80`: a server in the container is reachable from the host through the
published loopback port."""

from __future__ import annotations

from typing import Any

from harness.context import Ctx, Refused
from harness.scenario import scenario
from harness.waiting import Polled, poll
from tests.networking._support import free_port, host_read, server_cmd

BODY = "published-ok"
READY_S = 20


def _poll_host(port: int) -> Polled[str | None]:
    """Read through the published port from the host (loopback only) until the container's server answers:
    Docker's proxy accepts at once and closes while the server inside is not listening yet (under runc too), so
    the wait is a precondition; how long it took is kept in notes."""
    polled = poll(lambda: host_read(port), bool, timeout=READY_S, interval=0.2)
    if polled.timed_out:
        raise Refused(f"nothing answered through 127.0.0.1:{port} within {READY_S}s")
    return polled


@scenario("networking/publish")
def test_publish(ctx: Ctx) -> dict[str, Any]:
    """The server listens on port 80 inside and answers each connection with BODY; the host reads it through
    the port published on 127.0.0.1 (a free one, chosen just before)."""
    port = free_port()
    c = ctx.run(server_cmd(BODY, port=80), ports={"80/tcp": ("127.0.0.1", port)})
    polled = _poll_host(port)
    line = polled.value
    bindings = ctx.inspect(c)["NetworkSettings"]["Ports"].get("80/tcp") or []
    ctx.notes.update(port=port, answered=polled.note(), bindings=bindings)
    return {
        "host_reads": line,
        "binding": sorted(f"{b['HostIp']}:{'requested' if b['HostPort'] == str(port) else b['HostPort']}"
                          for b in bindings),
    }
