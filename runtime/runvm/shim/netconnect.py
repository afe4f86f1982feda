"""`docker network connect/disconnect` on a running container: Docker moves a veth into (or out of) the netns;
the shim notices through netlink, hot-plugs (or unplugs) a virtio NIC over QMP behind a new tap, and the agent
configures it. The guest's view follows the netns, as a runc container's would."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from typing import TYPE_CHECKING, Any

from runtime.runvm import log
from runtime.runvm.net import tap as tapmod
from runtime.runvm.net import watch as netwatch
from runtime.runvm.shim import forked

if TYPE_CHECKING:
    from runtime.runvm.shim.vm_shim import VmShim

DEBOUNCE_S = 0.3


def config_of(v: dict[str, Any]) -> str:
    return json.dumps({k: v[k] for k in ("mac", "mtu", "addresses", "routes")}, sort_keys=True)


def _list_veths() -> dict[str, Any]:
    from runtime.runvm.net import plumb

    return plumb.list_veths()


def _wire(tap: str, name: str) -> bool:
    from runtime.runvm.net import plumb

    return plumb.wire_named(tap, name)


async def reconcile(shim: VmShim) -> None:
    found = {v["name"]: v for v in (await forked.call(_list_veths))["veths"]}
    for name in [n for n in shim.nics if n not in found]:
        await _unplug(shim, name)
    for name, veth in found.items():
        known = shim.nics.get(name)
        if known is None:
            await _plug(shim, veth)
        elif known.get("config") != config_of(veth) and veth["addresses"]:
            nic = _nic(veth, known["guest_mac"])
            await shim.agent.request({"op": "net_add", "nic": nic}, timeout=30)
            known.update(nic, guest_mac=veth["mac"], config=config_of(veth))


def _nic(veth: dict[str, Any], guest_mac: str) -> dict[str, Any]:
    return {"guest_mac": guest_mac, "mac": veth["mac"], "mtu": veth["mtu"], "name": veth["name"],
            "addresses": veth["addresses"], "routes": veth["routes"]}


async def _plug(shim: VmShim, veth: dict[str, Any]) -> None:
    n = shim.next_nic = getattr(shim, "next_nic", 0) + 1
    tap_name, dev, netdev, fdname = f"vmtap{n}", f"nic{n}", f"net{n}", f"tapfd{n}"
    fd = tapmod.open_tap(tap_name)
    try:
        await forked.call(_wire, tap_name, veth["name"])
        os.set_inheritable(fd, True)
        await shim.qmp_helper({"op": "plug_nic", "tap_fd": fd, "fdname": fdname, "netdev": netdev,
                               "device": dev, "mac": veth["mac"]}, pass_fds=(fd,))
    finally:
        with contextlib.suppress(OSError):
            os.close(fd)
    nic = _nic(veth, veth["mac"])
    if veth["addresses"]:
        await shim.agent.request({"op": "net_add", "nic": nic}, timeout=30)
    shim.nics[veth["name"]] = {**nic, "device": dev, "netdev": netdev, "config": config_of(veth)}
    log.info(f"hot-plugged {dev} for {veth['name']} ({veth['mac']})")


async def _unplug(shim: VmShim, name: str) -> None:
    nic = shim.nics.pop(name)
    with contextlib.suppress(Exception):
        await shim.agent.request({"op": "net_remove", "mac": nic["guest_mac"]}, timeout=10)
    if nic.get("device") == "nic0":
        return  # the template's NIC stays, down, behind its tap
    try:
        await shim.qmp_helper({"op": "unplug_nic", "device": nic["device"], "netdev": nic["netdev"]})
    except Exception as e:
        log.warning(f"unplugging {nic['device']}: {e}")
    log.info(f"removed {nic['device']} ({name})")


async def watch(shim: VmShim) -> None:
    sock = netwatch.subscribe()
    log.trace("netconnect watching")
    loop = asyncio.get_running_loop()
    changed = asyncio.Event()

    def readable() -> None:
        n = netwatch.drain(sock)
        log.trace(f"netlink events {n}")
        if n:
            changed.set()

    loop.add_reader(sock.fileno(), readable)
    try:
        while True:
            await changed.wait()
            await asyncio.sleep(DEBOUNCE_S)
            changed.clear()
            try:
                log.trace("netconnect reconcile")
                await reconcile(shim)
                log.trace(f"netconnect done {sorted(shim.nics)}")
            except Exception as e:
                log.trace(f"netconnect failed {e!r}")
                log.warning(f"network change not applied: {e}")
    finally:
        loop.remove_reader(sock.fileno())
        sock.close()
