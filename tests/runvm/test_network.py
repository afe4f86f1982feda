"""runvm networking through Docker: the guest NIC joined to Docker's veth must behave like a runc container's
eth0, both between containers (an internal user-defined network, names from Docker's embedded DNS) and for a
published port reached from the host's loopback."""

from __future__ import annotations

import contextlib
import ipaddress
import secrets
import socket
import time
import urllib.request
from typing import Any

import pytest

from tests.runvm.conftest import IMAGE, LABEL, wait_log

pytestmark = pytest.mark.docker


def httpd(body: str) -> list[str]:
    """busybox httpd serving /www/f; "ready" once the file exists (httpd -f then listens at once)."""
    return ["sh", "-c", f"mkdir -p /www && echo {body} > /www/f && echo ready && exec httpd -f -p 8080 -h /www"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_internal_network_peers_reach_each_other_by_name(dk: Any) -> None:
    """Two runvm containers on `docker network create --internal`: the client resolves the server's name and
    fetches a file from its httpd."""
    tag = secrets.token_hex(3)
    net = dk.networks.create(f"rvt-net-{tag}", driver="bridge", internal=True, labels=LABEL)
    server = client = None
    try:
        server = dk.containers.run(IMAGE, httpd("hello-peer"), runtime="runvm", detach=True, labels=LABEL,
                                   name=f"rvt-srv-{tag}", network=net.name)
        assert "ready" in wait_log(server, "ready")
        fetch = (f"i=0; while [ $i -lt 30 ]; do out=$(printf 'GET /f HTTP/1.0\\r\\n\\r\\n' | nc -w 3 rvt-srv-{tag} "
                 "8080) && [ -n \"$out\" ] && break; i=$((i+1)); sleep 0.3; done; echo \"$out\"")
        client = dk.containers.run(IMAGE, ["sh", "-c", fetch], runtime="runvm", detach=True, labels=LABEL,
                                   network=net.name)
        assert client.wait(timeout=120)["StatusCode"] == 0
        reply = client.logs().decode(errors="replace")
        assert "200 OK" in reply and "hello-peer" in reply, reply
    finally:
        for c in (client, server):
            if c is not None:
                c.remove(force=True)
        net.remove()


def test_published_port_is_reachable_from_host_loopback(dk: Any) -> None:
    """-p 127.0.0.1:PORT:8080: the host's loopback reaches httpd in the guest."""
    port = free_port()
    server = dk.containers.run(IMAGE, httpd("hello-published"), runtime="runvm", detach=True, labels=LABEL,
                               ports={"8080/tcp": ("127.0.0.1", port)})
    try:
        assert "ready" in wait_log(server, "ready")
        body, last_error = b"", ""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/f", timeout=5) as resp:
                    body = resp.read()
                break
            except OSError as e:
                last_error = repr(e)
                with contextlib.suppress(Exception):
                    time.sleep(0.3)
        assert body == b"hello-published\n", last_error
    finally:
        server.remove(force=True)


def test_a_network_set_up_after_create_is_there_when_the_process_starts(current_dk: Any) -> None:
    """Docker 26 and later configure the container's netns after `create` (no prestart hook): runvm joins the
    veth to the VM's own NIC and starts the embedded DNS relay before the process runs, so the first command
    already has Docker's address and resolves a peer's name, on one NIC (no hot-plugged second one)."""
    tag = secrets.token_hex(3)
    net = current_dk.networks.create(f"rvt-late-{tag}", driver="bridge", internal=True, labels=LABEL)
    try:
        peer = current_dk.containers.run(IMAGE, ["sleep", "120"], detach=True, labels=LABEL,
                                         name=f"rvt-peer-{tag}", network=net.name)
        peer.reload()
        peer_ip = peer.attrs["NetworkSettings"]["Networks"][net.name]["IPAddress"]
        probe = current_dk.containers.create(
            IMAGE, ["sh", "-c", "ip -o -4 addr show; nslookup " + peer.name + " 2>&1"], runtime="runvm",
            labels=LABEL, network=net.name)
        probe.start()
        assert probe.wait(timeout=120)["StatusCode"] == 0
        out = probe.logs().decode()
        net.reload()
        subnet = ipaddress.ip_network(net.attrs["IPAM"]["Config"][0]["Subnet"])
        inet = [line.split()[1:4] for line in out.splitlines() if " inet " in line and " lo " not in line]
        assert [nic for nic, _, _ in inet] == ["eth0"], out
        assert ipaddress.ip_interface(inet[0][2]).ip in subnet, out
        assert f"Address: {peer_ip}" in out or f"Address 1: {peer_ip}" in out, out
    finally:
        _cleanup(current_dk, net)


def _cleanup(client: Any, net: Any) -> None:
    for c in client.containers.list(all=True, filters={"network": net.name}):
        with contextlib.suppress(Exception):
            c.remove(force=True)
    with contextlib.suppress(Exception):
        net.remove()


def _has_address_in(container: Any, subnet_prefix: str) -> bool:
    out = container.exec_run(["ip", "-4", "addr"]).output.decode()
    return f"inet {subnet_prefix}" in out


def test_network_connect_and_disconnect_hot_plug_a_nic(dk: Any) -> None:
    """`docker network connect` on a running runvm container: a NIC appears in the guest with Docker's
    address on the new network and reaches a peer there; `disconnect` takes it away."""
    tag = secrets.token_hex(3)
    first = dk.networks.create(f"rvt-n1-{tag}", internal=True, labels=LABEL)
    second = dk.networks.create(f"rvt-n2-{tag}", internal=True, labels=LABEL)
    containers = []
    try:
        peer = dk.containers.run(IMAGE, ["sh", "-c", "echo ready; while :; do echo peer-ok | nc -l -p 9000; done"],
                                 runtime="runc", detach=True, labels=LABEL, name=f"rvt-peer-{tag}",
                                 network=second.name)
        containers.append(peer)
        box = dk.containers.run(IMAGE, ["sleep", "600"], runtime="runvm", detach=True, labels=LABEL,
                                network=first.name)
        containers.append(box)
        wait_log(peer, "ready")
        second.connect(box)
        box.reload()
        address = box.attrs["NetworkSettings"]["Networks"][second.name]["IPAddress"]
        prefix = address.rsplit(".", 1)[0] + "."
        deadline = time.monotonic() + 15
        while not _has_address_in(box, address) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _has_address_in(box, address)
        assert box.exec_run(["nc", "-w", "3", f"rvt-peer-{tag}", "9000"]).output.decode().strip() == "peer-ok"
        second.disconnect(box)
        deadline = time.monotonic() + 15
        while _has_address_in(box, prefix) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _has_address_in(box, prefix)
    finally:
        for c in containers:
            with contextlib.suppress(Exception):
                c.remove(force=True)
        for n in (second, first):
            with contextlib.suppress(Exception):
                n.remove()
