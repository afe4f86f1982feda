"""`docker network connect/disconnect` on a running container: Docker moves a veth into (or out of) the netns.
The resident shim notices through netlink and runs this as a short-lived helper in the container's netns
(`python -m runtime.runvm.shim.netconnect`): it compares the veths with the NICs the VM has, hot-plugs a
virtio NIC behind a new tap for each new veth and unplugs the ones whose veth went, over QMP, and tells the shim
what the agent must configure."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from pathlib import Path
from typing import Any

from runtime.runvm.net import tap as tapmod


def config_of(v: dict[str, Any]) -> str:
    return json.dumps({k: v[k] for k in ("mac", "mtu", "addresses", "routes")}, sort_keys=True)


def nic_of(veth: dict[str, Any], guest_mac: str) -> dict[str, Any]:
    return {"guest_mac": guest_mac, "mac": veth["mac"], "mtu": veth["mtu"], "name": veth["name"],
            "addresses": veth["addresses"], "routes": veth["routes"]}


async def reconcile(client: Any, nics: dict[str, dict[str, Any]], next_nic: int,
                    first_tap: str | None = None) -> dict[str, Any]:
    """Returns the NICs after the change, and the agent's work: configure (net_add) and take down (net_remove).

    first_tap: the container has not started and its VM's own NIC (behind this tap) has no veth yet, as under
    Docker 26 and later, which configure the netns after create rather than in a hook: the first veth is
    joined to that NIC (as the set-up does when the veth is there at create), not hot-plugged beside it."""
    from runtime.runvm.net import plumb

    # pyroute2's synchronous API runs its own event loop: in a thread, beside ours (this is a helper process)
    found = {v["name"]: v for v in (await asyncio.to_thread(plumb.list_veths))["veths"]}
    configure, take_down = [], []
    if first_tap and found and not any(n.get("device") == "nic0" for n in nics.values()):
        from runtime.runvm.shim.stages import network

        first = min(found.values(), key=lambda v: v["name"])
        await asyncio.to_thread(plumb.wire, first_tap, first)
        net = network.from_veth(first, network.netns_sysctls())
        nics.update(net.nics)
        configure += net.guest_nics
    for name in [n for n in nics if n not in found]:
        nic = nics.pop(name)
        take_down.append(nic["guest_mac"])
        if nic.get("device") != "nic0":  # the template's NIC stays, down, behind its tap
            await _unplug(client, nic)
    for name, veth in found.items():
        known = nics.get(name)
        if known is None:
            next_nic += 1
            await _plug(client, veth, next_nic)
            nic = nic_of(veth, veth["mac"])
            nics[name] = {**nic, "device": f"nic{next_nic}", "netdev": f"net{next_nic}", "config": config_of(veth)}
            if veth["addresses"]:
                configure.append(nic)
        elif known.get("config") != config_of(veth) and veth["addresses"]:
            nic = nic_of(veth, known["guest_mac"])
            configure.append(nic)
            known.update(nic, guest_mac=veth["mac"], config=config_of(veth))
    return {"nics": nics, "next_nic": next_nic, "configure": configure, "take_down": take_down}


async def _plug(client: Any, veth: dict[str, Any], n: int) -> None:
    from runtime.runvm.net import plumb

    tap_name, fdname = f"vmtap{n}", f"tapfd{n}"
    fd = tapmod.open_tap(tap_name)
    try:
        await asyncio.to_thread(plumb.wire_named, tap_name, veth["name"])
        client.send_fd_scm(fd)
        await client.execute("getfd", {"fdname": fdname})
    finally:
        with contextlib.suppress(OSError):
            os.close(fd)  # QEMU has its own copy now
    await client.execute("netdev_add", {"type": "tap", "id": f"net{n}", "fd": fdname, "vhost": False})
    await client.execute("device_add", {"driver": "virtio-net-pci", "netdev": f"net{n}", "mac": veth["mac"],
                                        "id": f"nic{n}"})


async def _unplug(client: Any, nic: dict[str, Any]) -> None:
    await client.execute("device_del", {"id": nic["device"]})
    for _ in range(100):  # the guest acknowledges the ACPI eject; then the netdev can go
        names = {p["name"] for p in await client.execute("qom-list", {"path": "/machine/peripheral"})}
        if nic["device"] not in names:
            break
        await asyncio.sleep(0.05)
    await client.execute("netdev_del", {"id": nic["netdev"]})


async def _main(req: dict[str, Any]) -> dict[str, Any]:
    from runtime.runvm.vm import qmp

    client = await qmp.connect(Path(req["qmp_sock"]), timeout=30, name="runvm-netconnect")
    try:
        return await reconcile(client, req["nics"], int(req["next_nic"]), req.get("first_tap"))
    finally:
        with contextlib.suppress(Exception):
            await client.disconnect()


if __name__ == "__main__":
    from runtime.runvm.shim.helper_main import serve

    raise SystemExit(serve(_main))
