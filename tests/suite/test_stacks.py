"""The `current` stack: Debian sid's Docker, containerd and runc in their own root filesystem, reached over its
own socket. Each runtime the matrix tests runs a container there, a disposable daemon of the stack is the
stack's dockerd, taking the stack down leaves no container, mount, bridge, process or directory behind, and
bringing it up again leaves the host daemon's docker0 alone."""

from __future__ import annotations

import subprocess
from pathlib import Path

import psutil
import pytest
from pyroute2 import IPRoute

from harness import labels, procs, stack_data, stacks
from harness.daemon import DisposableDaemon
from harness.setup import dockerd
from harness.setup.images import IMAGE

pytestmark = pytest.mark.docker

CURRENT = stack_data.get("current")


@pytest.fixture(scope="module")
def endpoint() -> stacks.Endpoint:
    return stacks.up(CURRENT, log=lambda _line: None)


def _major_minor(version: str) -> tuple[int, int]:
    major, minor = version.split(".")[:2]
    return int(major), int("".join(ch for ch in minor if ch.isdigit()))


def test_the_stack_is_the_current_docker(endpoint: stacks.Endpoint) -> None:
    v = endpoint.versions
    assert _major_minor(v["docker"]) >= (28, 0), v
    assert _major_minor(v["containerd"]) >= (2, 0), v
    assert _major_minor(v["runc"]) >= (1, 3), v
    assert endpoint.packages["docker.io"].startswith(v["docker"].split("+")[0]), endpoint.packages
    assert endpoint.launcher and endpoint.dockerd_pid is not None


@pytest.mark.parametrize("runtime", ["runc", "crun", "runsc", "runvm"])
def test_each_runtime_runs_a_container_on_the_stack(endpoint: stacks.Endpoint, runtime: str) -> None:
    client = endpoint.client(timeout=120)
    if runtime not in client.info()["Runtimes"]:
        pytest.fail(f"{runtime} is not registered with the {endpoint.stack} stack's dockerd")
    out = client.containers.run(f"{IMAGE}:latest", ["sh", "-c", "echo ran-$((6*7)); cat /proc/self/cgroup"],
                                runtime=runtime, network_mode="none", remove=True,
                                labels={labels.RUN: labels.new_run_id()})
    text = out.decode()
    assert text.startswith("ran-42"), text
    if runtime in ("runc", "crun"):  # same kernel: the container's cgroup is below the stack's parent
        assert "/vmparity-stack-current/" in text, text


def test_two_containers_on_a_stack_network_reach_each_other(endpoint: stacks.Endpoint) -> None:
    """The host's FORWARD chain (policy DROP, br_netfilter) would drop the stack's bridged frames: the stack's
    DOCKER-USER rule lets them through, and the peer answers by name on an internal network."""
    client = endpoint.client(timeout=120)
    run_label = {labels.RUN: labels.new_run_id()}
    net = client.networks.create(f"vmp-stack-peers-{run_label[labels.RUN]}", internal=True, labels=run_label)
    try:
        server = client.containers.run(f"{IMAGE}:latest", ["nc", "-ll", "-p", "8080", "-e", "echo", "peer-ok"],
                                       detach=True, network=net.name, labels=run_label)
        out = client.containers.run(f"{IMAGE}:latest", ["sh", "-c", f"nc -w 5 {server.name} 8080 </dev/null"],
                                    network=net.name, remove=True, labels=run_label)
        assert out.decode().strip() == "peer-ok"
    finally:
        for c in client.containers.list(all=True, filters={"network": net.name}):
            c.remove(force=True)
        net.remove()


def test_a_disposable_daemon_of_the_stack_is_the_stacks_dockerd(endpoint: stacks.Endpoint) -> None:
    d = DisposableDaemon(labels.new_run_id(), stack=endpoint)
    d.start()
    rec = d.record
    try:
        assert d.client.version()["Version"] == endpoint.versions["docker"]
        assert rec.exec_root.startswith(str(endpoint.exec_root))
        out = d.client.containers.run(f"{IMAGE}:latest", ["echo", "inner"], network_mode="none", remove=True)
        assert out.decode().strip() == "inner"
    finally:
        d.stop()
    assert procs.mounts_under(rec.exec_root) == [] and procs.mounts_under(rec.data_root) == []
    assert not Path(rec.exec_root).exists() and not rec.path.parent.exists()


def test_down_leaves_nothing_and_up_comes_back(endpoint: stacks.Endpoint) -> None:
    anchor = stacks.anchor_pid(CURRENT)
    removed = stacks.down(CURRENT)
    assert f"container {stacks.container_name(CURRENT)}" in removed
    host = dockerd.client()
    assert not host.containers.list(all=True, filters={"label": f"{stacks.LABEL}={CURRENT.name}"})
    assert procs.mounts_under(str(stacks.exec_root(CURRENT))) == []
    assert procs.mounts_under(str(stacks.data_root(CURRENT))) == []
    with IPRoute() as ipr:
        assert not ipr.link_lookup(ifname=stacks.bridge(CURRENT))
    rules = subprocess.run(["iptables", "-S"], capture_output=True, text=True, check=True).stdout
    assert f"vmparity stack {CURRENT.name}" not in rules
    assert anchor is None or not psutil.pid_exists(anchor)
    assert not stacks.exec_root(CURRENT).exists()
    with IPRoute() as ipr:
        host_bridge_before = bool(ipr.link_lookup(ifname="docker0"))
    again = stacks.up(CURRENT, log=lambda _line: None)
    assert again.versions == endpoint.versions
    with IPRoute() as ipr:  # the host daemon's default bridge survives the stack's start
        assert bool(ipr.link_lookup(ifname="docker0")) == host_bridge_before
