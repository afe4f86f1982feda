"""Small helpers shared by the networking oracles: a tiny TCP server that answers every connection with a known
line, and a client that reads it.

Both are busybox `nc`: `nc -ll -p PORT [ADDR] -e echo BODY` forks an `echo` per connection, and the client
(`nc -w T HOST PORT </dev/null`) prints what it got. busybox's wget segfaults in this image, and busybox httpd
running under gVisor loses about one reply in ten (the client, under runc or runsc, reads nothing), which would
make networking cells flaky for a reason unrelated to the feature under test.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import secrets
import shlex
import socket
from typing import Any

from docker.models.containers import Container

from harness.context import Ctx, Refused
from harness.waiting import poll

PORT = 8080
CONNECT_TIMEOUT_S = 3
"""nc's connect/idle timeout: enough for a VM runtime under TCG, short enough for an unreachable peer."""


def name(role: str) -> str:
    """A container name the embedded DNS will answer for (Docker registers only names the user chose)."""
    return f"vmp-{role}-{secrets.token_hex(3)}"


def disposable(ctx: Ctx, **kwargs: Any) -> Ctx:
    """ctx.disposable(), plus reaping the stopped dockerd: the harness never waits for it, and the zombie it
    leaves (comm "dockerd") shows up in the host snapshot as a leftover process. The reaper is registered first,
    so it runs after the daemon's own teardown (clean-ups run in reverse order)."""
    holder: list[int] = []

    def reap_disposable_dockerd() -> None:
        for pid in holder:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)

    ctx.on_cleanup(reap_disposable_dockerd)
    d = ctx.disposable(**kwargs)
    pid = d.daemon.record.pid  # type: ignore[attr-defined]
    if pid:
        holder.append(pid)
    return d


def server_cmd(body: str, port: int = PORT, bind: str = "", *, prog: str = "echo") -> list[str]:
    """A container command answering every connection on `port` with `prog body` (bind: one address to listen on,
    default all of the namespace's). `body` is a single word."""
    return ["nc", "-ll", "-p", str(port), *([bind] if bind else []), "-e", prog, *([body] if body else [])]


def fetch(ctx: Ctx, c: Container, host: str, port: int = PORT, timeout: int = CONNECT_TIMEOUT_S) -> str | None:
    """One attempt from inside `c`: the line the server at host:port answers, or None when nothing answered."""
    r = ctx.exec(c, f"nc -w {timeout} {shlex.quote(host)} {port} </dev/null 2>/dev/null")
    lines = r.stdout.strip().splitlines()
    return lines[-1].strip() if lines else None


def wait_serving(ctx: Ctx, c: Container, port: int = PORT, host: str = "127.0.0.1", timeout_s: float = 20) -> str:
    """Poll from inside the server's container until it answers; a server that never does is the runtime's
    failure to run it (Refused), so the cell records it rather than erroring. How long it took is kept in notes
    (a precondition of the scenarios, not their effect: under runc too the server starts a moment after `run`)."""
    polled = poll(lambda: fetch(ctx, c, host, port, timeout=1), bool, timeout=timeout_s, interval=0.2)
    ctx.notes[f"serving {c.name} {host}:{port}"] = polled.note()
    if polled.timed_out or polled.value is None:
        raise Refused(f"the server on {host}:{port} did not answer within {timeout_s:.0f}s")
    return polled.value


def ipv4_addrs(ctx: Ctx, c: Container) -> list[str]:
    """The IPv4 addresses (with prefix) the container's network stack lists, sorted; loopback included."""
    out = ctx.sh(c, "ip -o -4 addr show")
    addrs = []
    for line in out.splitlines():
        fields = line.split()
        if "inet" in fields:
            addrs.append(fields[fields.index("inet") + 1])
    return sorted(addrs)


def ifnames(ctx: Ctx, c: Container) -> list[str]:
    """Interface names the container sees (from `ip -o link`), without the @peer suffix, sorted."""
    out = ctx.sh(c, "ip -o link show")
    names = set()
    for line in out.splitlines():
        parts = line.split(":", 2)
        if len(parts) >= 2:
            names.add(parts[1].strip().split("@", 1)[0])
    return sorted(names)


def in_subnet(addrs: list[str], subnet: str) -> bool:
    net = ipaddress.ip_network(subnet, strict=False)
    return any(ipaddress.ip_interface(a).ip in net for a in addrs)


def ip_on(ctx: Ctx, c: Container, network: str) -> str:
    """The container's address on a Docker network, as Docker reports it."""
    nets: dict[str, Any] = ctx.inspect(c)["NetworkSettings"]["Networks"]
    return str(nets[network]["IPAddress"])


def subnet_gateway(network: Any) -> tuple[str, str]:
    """The network's subnet and gateway (the bridge's own address on the host side), as Docker allocated them."""
    network.reload()
    cfg = network.attrs["IPAM"]["Config"][0]
    return str(cfg["Subnet"]), str(cfg.get("Gateway", ""))


def subnet_of(network: Any) -> str:
    return subnet_gateway(network)[0]


def host_read(port: int, host: str = "127.0.0.1", timeout: float = 3) -> str | None:
    """Connect from the host (its own namespace) and return the server's line; None when nothing answers."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.shutdown(socket.SHUT_WR)
            data = b""
            while chunk := s.recv(4096):
                data += chunk
    except OSError:
        return None
    lines = data.decode(errors="replace").strip().splitlines()
    return lines[-1].strip() if lines else None


def free_port() -> int:
    """A TCP port nobody listens on at the moment (on loopback)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def resolve(ctx: Ctx, c: Container, name: str) -> list[str]:
    """The IPv4 addresses `nslookup name` answers inside the container (the embedded DNS), sorted."""
    r = ctx.exec(c, f"nslookup {shlex.quote(name)} 2>&1")
    addrs, after_name = [], False
    for line in r.stdout.splitlines():
        if line.startswith("Name:"):
            after_name = True
        elif after_name and line.startswith("Address"):
            value = line.split(":", 1)[1].strip().split()[0]
            try:
                if ipaddress.ip_address(value).version == 4:
                    addrs.append(value)
            except ValueError:
                continue
    return sorted(set(addrs))
