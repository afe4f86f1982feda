"""Host state around host-sensitive scenarios: what the machine looks like outside every container."""

from __future__ import annotations

import os
from pathlib import Path

from pyroute2 import IPRoute

from harness import runtime_data
from harness.paths import DOCKER_EXEC_ROOT
from harness.waiting import poll

SYSCTLS = (
    "net/ipv4/ip_forward", "net/ipv4/ping_group_range", "net/ipv4/ip_unprivileged_port_start",
    "net/ipv4/tcp_syncookies", "net/core/somaxconn", "net/ipv4/conf/all/forwarding",
    "kernel/shmmax", "kernel/shmmni", "kernel/msgmax", "kernel/sem", "fs/mqueue/msg_max",
    "kernel/hostname", "kernel/domainname", "vm/overcommit_memory", "vm/swappiness", "kernel/panic",
)
"""Every key a scenario draws or writes, and the host-wide ones a runtime could change by mistake."""
Snapshot = dict[str, frozenset[str]]


def _links_and_addrs() -> tuple[set[str], set[str], set[str], set[str]]:
    links, addrs, routes, qdiscs = set(), set(), set(), set()
    with IPRoute() as ipr:
        names = {}
        for link in ipr.get_links():
            name = link.get_attr("IFLA_IFNAME")
            names[link["index"]] = name
            info = link.get_attr("IFLA_LINKINFO")
            kind = info.get_attr("IFLA_INFO_KIND") if info else None
            up = "up" if link["flags"] & 1 else "down"
            links.add(f"link {name} kind={kind} mac={link.get_attr('IFLA_ADDRESS')} {up} "
                      f"mtu={link.get_attr('IFLA_MTU')} master={link.get_attr('IFLA_MASTER')}")
        for a in ipr.get_addr():
            if a["index"] not in names:
                continue  # its link vanished between the two dumps: another container's veth going away
            addrs.add(f"address {names.get(a['index'])} {a.get_attr('IFA_ADDRESS')}/{a['prefixlen']}")
        for r in ipr.get_routes(table=254):
            routes.add(f"route {r.get_attr('RTA_DST') or 'default'}/{r['dst_len']} "
                       f"via {r.get_attr('RTA_GATEWAY')} dev {names.get(r.get_attr('RTA_OIF'))}")
        for q in ipr.get_qdiscs():
            if q["index"] not in names:
                continue
            qdiscs.add(f"qdisc {q.get_attr('TCA_KIND')} dev {names.get(q['index'])} parent {q['parent']:#x}")
    return links, addrs, routes, qdiscs


def _sysctls() -> set[str]:
    out = set()
    for key in SYSCTLS:
        try:
            value = " ".join(Path("/proc/sys", key).read_text().split())
        except OSError:
            continue
        out.add(f"sysctl {key.replace('/', '.')}={value}")
    return out


def _mounts() -> set[str]:
    out = set()
    for line in Path("/proc/1/mountinfo").read_text().splitlines():
        fields = line.split()
        out.add(f"mount {fields[4]} ({fields[fields.index('-') + 1]})")
    return out


def _netns(docker_exec_root: Path) -> set[str]:
    out: set[str] = set()
    for d in dict.fromkeys(("/run/netns", "/var/run/docker/netns", f"{docker_exec_root}/netns")):
        if os.path.isdir(d):
            out.update(f"netns {d}/{n}" for n in os.listdir(d))
    return out


def sysctls() -> Snapshot:
    """The watched sysctls alone: taken when the oracle returns, before any clean-up could put one back."""
    return {"sysctls": frozenset(_sysctls())}


def snapshot(docker_exec_root: Path = DOCKER_EXEC_ROOT) -> Snapshot:
    """docker_exec_root: the observed daemon's, whose netns files count as the host's."""
    links, addrs, routes, qdiscs = _links_and_addrs()
    return {
        "links": frozenset(links), "addresses": frozenset(addrs), "routes": frozenset(routes),
        "qdiscs": frozenset(qdiscs), "sysctls": frozenset(_sysctls()), "mounts": frozenset(_mounts()),
        "netns": frozenset(_netns(docker_exec_root)),
    }


def diff(before: Snapshot, after: Snapshot) -> list[str]:
    changes = []
    for key in sorted(before.keys() | after.keys()):
        b, a = before.get(key, frozenset()), after.get(key, frozenset())
        changes += [f"removed: {x}" for x in sorted(b - a)]
        changes += [f"added: {x}" for x in sorted(a - b)]
    return changes


TRANSIENT_DEVICES = ("veth", "br-", "docker0", "docker_gwbridge")
"""Container plumbing Docker creates and removes for every container and network, ours or anyone's; each
runtime's own (runtimes/*.yaml, transient_devices) is added to it."""
DOCKER_PATHS = ("/var/lib/docker", "/run/docker", "/var/run/docker", "/var/lib/vmparity/daemons", "/run/vmparity",
                "/var/lib/vmparity/stacks")
"""Where Docker and the suite mount per container; each runtime's own (transient_mounts) is added to it."""


def _device(body: str) -> str:
    words = body.split()
    for marker in ("dev", "link", "address"):
        if marker in words[:1] or marker in words:
            i = words.index(marker) if marker in words else 0
            if i + 1 < len(words):
                return words[i + 1]
    return ""


def relevant(change: str, markers: tuple[str, ...]) -> bool:
    """Whether a change can be this scenario's doing: other containers and daemons on the host come and go."""
    body = change.split(": ", 1)[-1]
    kind = body.split(" ", 1)[0]
    if any(m and m in body for m in markers):
        return True
    if kind == "mount":
        return not body.split()[1].startswith((*DOCKER_PATHS, *runtime_data.transient_mounts()))
    if kind == "netns":
        return body.split()[1].startswith("/run/netns/")
    if kind in ("link", "address", "qdisc", "route"):
        return not _device(body).startswith((*TRANSIENT_DEVICES, *runtime_data.transient_devices()))
    return True


def settled_diff(before: Snapshot, markers: tuple[str, ...] = (), settle_s: float = 6.0,
                 docker_exec_root: Path = DOCKER_EXEC_ROOT) -> list[str]:
    """Changes attributable to the scenario. Docker tears some things down asynchronously (netns, veths):
    give it a moment before calling it impact."""
    return poll(lambda: [c for c in diff(before, snapshot(docker_exec_root)) if relevant(c, markers)],
                lambda changes: not changes, settle_s, interval=0.5).value
