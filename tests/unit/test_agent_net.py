"""The guest NIC's configuration as the iproute2 batch the agent sends, on the host: a fake /sys/class/net, the
batch recorded instead of run."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from runtime.agent import net


@pytest.fixture
def sysnet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, list[list[str]]]:
    monkeypatch.setattr(net, "SYS_NET", str(tmp_path))
    batches: list[list[str]] = []
    monkeypatch.setattr(net, "run_batch", batches.append)
    return tmp_path, batches


def nic(root: Path, name: str, mac: str, up: bool = False) -> None:
    (root / name).mkdir()
    (root / name / "address").write_text(mac + "\n")
    (root / name / "flags").write_text("0x1003\n" if up else "0x1002\n")


def configure(spec: dict[str, Any]) -> str:
    return asyncio.run(net.configure(spec, timeout=0.2))


def test_a_fresh_nic_is_renamed_addressed_and_routed(sysnet: tuple[Path, list[list[str]]]) -> None:
    root, batches = sysnet
    nic(root, "ens4", "52:54:00:aa:bb:cc")
    name = configure({"guest_mac": "52:54:00:AA:BB:CC", "mac": "02:42:ac:11:00:02", "mtu": 1500, "name": "eth0",
                      "addresses": ["172.17.0.2/16"],
                      "routes": [{"dst": None, "gateway": "172.17.0.1"}, {"dst": "172.17.0.0/16"},
                                 {"dst": "10.9.0.0/24"}, {"dst": "fd00::/64", "family": 10}]})
    assert name == "eth0"
    assert batches == [[
        "link set dev ens4 address 02:42:ac:11:00:02 mtu 1500 name eth0",
        "addr add 172.17.0.2/16 dev eth0",
        "link set dev eth0 up",
        "route replace 10.9.0.0/24 dev eth0 scope link",  # gateway-less first; the address's own subnet skipped
        "-6 route replace fd00::/64 dev eth0 scope link",
        "route replace default dev eth0 via 172.17.0.1",
    ]]


def test_a_used_nic_goes_down_and_is_flushed_and_a_name_taken_is_moved_aside(
        sysnet: tuple[Path, list[list[str]]]) -> None:
    root, batches = sysnet
    nic(root, "ens5", "52:54:00:00:00:05", up=True)
    nic(root, "eth1", "52:54:00:00:00:99")
    configure({"guest_mac": "52:54:00:00:00:05", "name": "eth1", "addresses": []})
    assert batches == [["link set dev ens5 down", "link set dev eth1 down", "link set dev eth1 name old-eth1",
                        "link set dev ens5 name eth1", "addr flush dev eth1", "link set dev eth1 up"]]


def test_a_missing_nic_is_named_and_removal_flushes(sysnet: tuple[Path, list[list[str]]]) -> None:
    root, batches = sysnet
    with pytest.raises(LookupError, match="no guest NIC with MAC 52:54:00:00:00:07"):
        configure({"guest_mac": "52:54:00:00:00:07"})
    nic(root, "eth0", "52:54:00:00:00:07")
    asyncio.run(net.remove("52:54:00:00:00:07"))
    asyncio.run(net.remove("52:54:00:00:00:08"))
    assert batches == [["addr flush dev eth0", "link set dev eth0 down"]]


def test_only_the_netns_s_own_sysctls_are_written(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    written: dict[str, str] = {}

    class Recorder:
        def __init__(self, path: str, mode: str) -> None:
            self.path = path

        def __enter__(self) -> Recorder:
            return self

        def __exit__(self, *exc: object) -> None:
            pass

        def write(self, value: str) -> None:
            written[self.path] = value

    monkeypatch.setattr(net, "open", Recorder, raising=False)
    net.write_sysctls({"net.ipv6.conf.all.disable_ipv6": "1", "kernel.pid_max": "99"})
    assert written == {"/proc/sys/net/ipv6/conf/all/disable_ipv6": "1"}
