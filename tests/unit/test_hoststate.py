"""Which host changes count as the scenario's doing, with other containers coming and going."""

from __future__ import annotations

import pytest

from harness.hoststate import diff, relevant

CID = "a" * 64


@pytest.mark.parametrize(("change", "expected"), [
    ("added: link vmtap0 kind=tun mac=aa up mtu=1500 master=None", True),
    ("added: link veth12ab kind=veth mac=aa up mtu=1500 master=5", False),
    ("added: link br-0123 kind=bridge mac=aa up mtu=1500 master=None", False),
    ("removed: address eth0 10.0.0.5/24", True),
    ("added: address veth99 fe80::1/64", False),
    ("added: qdisc ingress dev eth0 parent 0xfffffff1", True),
    ("added: qdisc noqueue dev veth1 parent 0x0", False),
    ("added: route 172.18.0.0/16 via None dev br-77", False),
    ("removed: route default/0 via 10.0.0.1 dev eth0", True),
    ("added: sysctl net.ipv4.ip_forward=0", True),
    ("added: mount /mnt/leak (tmpfs)", True),
    ("added: mount /var/lib/docker/overlay2/xyz/merged (overlay)", False),
    ("added: netns /run/netns/leaked", True),
    ("added: netns /var/run/docker/netns/4f2a", False),
])
def test_relevance(change: str, expected: bool) -> None:
    assert relevant(change, (CID,)) is expected


def test_diff_names_both_directions() -> None:
    before = {"links": frozenset({"link a"}), "sysctls": frozenset({"sysctl x=1"})}
    after = {"links": frozenset({"link a", "link b"}), "sysctls": frozenset({"sysctl x=2"})}
    assert diff(before, after) == ["added: link b", "removed: sysctl x=1", "added: sysctl x=2"]
