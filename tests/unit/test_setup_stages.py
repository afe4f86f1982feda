"""The vm-shim set-up's stages: their pure parts (what each hands the next, and the handover's record)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from runtime.runvm.shim.constants import INIT_STREAMS
from runtime.runvm.shim.stages import boot, container, handover, network, record, resources, spare, stdio
from runtime.runvm.vm import qemu

VETH = {"name": "eth0", "mac": "02:42:ac:11:00:02", "mtu": 1500, "addresses": ["172.17.0.2/16"],
        "routes": [{"dst": "default", "gateway": "172.17.0.1"}]}


def test_only_pool_creates_that_boot_a_template_take_spares() -> None:
    assert spare.wanted(True, "auto", restoring=False)
    assert not spare.wanted(False, "auto", restoring=False)
    assert not spare.wanted(True, "cold", restoring=False)
    assert not spare.wanted(True, "auto", restoring=True)


def test_first_veth_becomes_the_guest_nic_and_the_residents_record() -> None:
    net = network.from_veth(VETH, {"net.ipv6.conf.all.disable_ipv6": "1"})
    (nic,) = net.guest_nics
    assert nic["guest_mac"] == qemu.TEMPLATE_MAC and nic["mac"] == VETH["mac"] and nic["name"] == "eth0"
    assert nic["sysctls"] == {"net.ipv6.conf.all.disable_ipv6": "1"}
    rec = net.nics["eth0"]
    assert rec["guest_mac"] == VETH["mac"] and rec["device"] == "nic0"  # later changes find it by the veth's MAC
    assert '"mtu": 1500' in rec["config"]


def test_embedded_dns_only_for_a_loopback_nameserver_in_resolv_conf() -> None:
    mounts = [{"destination": "/etc/hosts", "source": "/h"}, {"destination": "/etc/resolv.conf", "source": "/r"}]
    files = {"/r": "search x\nnameserver 127.0.0.11\noptions ndots:0\n"}
    assert network.embedded_dns(mounts, files.__getitem__) == "127.0.0.11"
    assert network.embedded_dns(mounts, lambda _p: "nameserver 8.8.8.8\n") is None
    assert network.embedded_dns(mounts[:1], files.__getitem__) is None

    def unreadable(_p: str) -> str:
        raise FileNotFoundError(_p)

    assert network.embedded_dns(mounts, unreadable) is None


def test_a_vm_of_the_templates_size_needs_no_hotplug() -> None:
    size = qemu.Size(mem_mib=512, vcpus=1, max_vcpus=2)
    assert resources.fits({}, size)
    assert not resources.fits({"cpu": {"quota": 200000, "period": 100000}}, size)


def test_no_terminal_keeps_containerds_stdio() -> None:
    io = stdio.setup(False, None)
    assert io.streams == dict(INIT_STREAMS) and io.tty_slave is None


def test_a_terminal_needs_a_console_socket() -> None:
    with pytest.raises(Exception, match="console-socket"):
        stdio.setup(True, None)


def test_the_guests_create_request() -> None:
    inp = container.ContainerInput("c1", {"process": {}, "mounts": [{"destination": "/old"}]},
                                   [{"destination": "/new"}], {"/new": "m0"}, dict(INIT_STREAMS), False,
                                   "/runvm/c1", Path("/s"), True, None)
    req = container.request(inp)
    assert req["op"] == "create" and req["spec"]["mounts"] == [{"destination": "/new"}]
    assert req["shares"] == {"/new": "m0"} and req["cgroup_path"] == "/runvm/c1"
    restoring = container.request(container.ContainerInput(**{**inp.__dict__, "restore_images": Path("/i")}))
    assert restoring["op"] == "restore"


def test_record_state_from_the_stages_outputs() -> None:
    info: dict[str, Any] = {"accel": "tcg", "accel_why": "no /dev/kvm", "template": "k", "boot": "templated",
                            "reason": "restored from template k"}
    inp = record.RecordInput("c1", Path("/b"), Path("/b/rootfs"), {"a": "b"}, False, info, 42, 7, "/runvm/c1",
                             "/run/runvm-pool/k/s")
    st = record.state_of(inp, pid=100, pid_start=5, created="now")
    assert (st.status, st.pid, st.qemu_pid, st.init_guest_pid, st.boot) == ("created", 100, 42, 7, "templated")
    assert st.extra == {"template": "k", "accel_why": "no /dev/kvm", "cgroup_path": "/runvm/c1",
                        "pool_slot": "/run/runvm-pool/k/s"}
    assert record.state_of(record.RecordInput(**{**inp.__dict__, "restored": True}), 1, 1, "").status == "running"


def test_vm_before_launch_is_not_alive() -> None:
    vm = boot.Vm(spare=None)
    assert not vm.alive()
    with pytest.raises(AssertionError):
        boot.agent_of(vm)


def _handover(**over: Any) -> handover.Handover:
    fields: dict[str, Any] = {
        "id": "c1", "state_dir": "/s", "sock_dir": "/k", "root": "/r", "tty": False, "fds": {"agent": 5},
        "qemu_pid": 9, "qmp_sock": "/k/qmp.sock", "share_dir": "/s/share", "own_netns": True, "nics": {},
        "dns_server": None, "max_vcpus": 2, "cpuset_pinned": False, "boot": {"boot": "cold"}, "restored": False,
        "cgroup_path": "/runvm/c1", "resources": {}, "vm": {}, "log": {"path": None, "format": "text"},
        "sys_path": ["/repo"], "unread": b"\x00\x01", "early": [(2, 3, b"\xff")], "resolv_name": None,
        "late_network": False}
    return handover.Handover(**{**fields, **over})


def test_handover_survives_json_with_its_bytes() -> None:
    import json

    h = _handover()
    back = handover.from_json(json.loads(json.dumps(handover.to_json(h))))
    assert back.unread == b"\x00\x01" and back.early == [(2, 3, b"\xff")]
    assert {n: getattr(back, n) for n in handover.Handover.__annotations__} == \
        {n: getattr(h, n) for n in handover.Handover.__annotations__}


def test_the_residents_handover_needs_no_dataclasses() -> None:
    import subprocess
    import sys

    code = ("import sys; sys.modules['ssl'] = None; from runtime.runvm.shim import vm_shim; "
            "print('dataclasses' in sys.modules, 'typing' in sys.modules, 'asyncio' in sys.modules)")
    out = subprocess.run([sys.executable, "-S", "-c", f"import sys; sys.path[:0] = {sys.path!r}; {code}"],
                         capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False", "False"]


def test_sigterm_cancels_the_set_up_so_its_clean_up_runs() -> None:
    """`runvm create` giving up SIGTERMs the set-up: the running stages are cancelled (their clean-up stops the
    VM) instead of the process dying on the spot."""
    import asyncio
    import os
    import signal

    from runtime.runvm.shim import vm_setup

    cleaned = []

    async def setup() -> None:
        try:
            asyncio.get_running_loop().call_later(0.05, os.kill, os.getpid(), signal.SIGTERM)
            await asyncio.sleep(10)
        finally:
            cleaned.append(True)

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(vm_setup._with_pidfd_watcher(setup()))
    assert cleaned == [True]
    assert signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None)  # no handler left behind
