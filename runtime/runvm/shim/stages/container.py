"""Stage: the container inside the guest. The agent builds it (or restores it from CRIU images) while the host
finishes the network; the NIC is configured before create returns, so the process (held until start) never
runs without it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runtime.runvm import cgroups, log
from runtime.runvm.shim import images
from runtime.runvm.shim.constants import IMAGES_DIR
from runtime.runvm.shim.link import Link
from runtime.runvm.shim.stages import network


@dataclass(frozen=True)
class ContainerInput:
    id: str
    spec: dict[str, Any]
    mounts: list[dict[str, Any]]
    shares: dict[str, str]
    streams: dict[str, int]
    tty: bool
    cgroup_path: str
    share_dir: Path
    own_netns: bool
    restore_images: Path | None
    """`runvm restore`: the processes come back from these images instead of being created."""


@dataclass(frozen=True)
class Container:
    reply: dict[str, Any]
    """The agent's answer to create/restore (pid, warnings, timings)."""
    net: network.Network
    dns_server: str | None

    @property
    def init_guest_pid(self) -> int:
        return int(self.reply.get("pid") or 0)


def request(inp: ContainerInput) -> dict[str, Any]:
    restoring = inp.restore_images is not None
    return {"op": "restore" if restoring else "create", "images": IMAGES_DIR, "id": inp.id,
            "spec": {**inp.spec, "mounts": inp.mounts}, "rootfs": "rootfs", "shares": inp.shares,
            "cgroup_layout": cgroups.layout(), "cgroup_path": inp.cgroup_path, "streams": inp.streams,
            "tty": inp.tty}


async def create(inp: ContainerInput, agent: Link, network_task: asyncio.Task[network.Network],
                 tap_replaced: bool, read_daemon_file: Callable[[str], str]) -> Container:
    restoring = inp.restore_images is not None
    if inp.restore_images is not None:
        images.bind(inp.share_dir, inp.restore_images)
    creating = asyncio.get_running_loop().create_task(
        agent.request(request(inp), timeout=300 if restoring else 120))
    try:
        net = await network_task
        if tap_replaced:
            await network.rewire(net)
        log.trace("network")
    except BaseException:
        creating.cancel()
        raise
    reply = await creating
    log.trace(f"agent create {reply.get('timings')}")
    for nic in net.guest_nics:
        await agent.request({"op": "net_add", "nic": nic}, timeout=30)
    # only now: on user networks Docker's hook is what points resolv.conf at its embedded server
    dns_server = network.embedded_dns(inp.spec.get("mounts") or [], read_daemon_file)
    if inp.own_netns and dns_server:
        await agent.request({"op": "dns_relay", "address": dns_server}, timeout=30)
    if inp.own_netns and not net.guest_nics:  # --net=none: still the netns's IPv6 setting, for loopback
        await agent.request({"op": "sysctls", "values": network.netns_sysctls()}, timeout=30)
    log.trace("nics")
    for w in reply.get("warnings") or []:
        log.warning(w)
    if restoring:
        images.unbind(inp.share_dir)
    return Container(reply, net, dns_server)
