"""What the set-up hands the resident vm-shim across its exec: one typed record, written to handover.json
(the exec is the one process boundary it crosses) plus inheritable fds.

The resident reads it too, and its memory is per-container host memory: dataclasses' imports (inspect and
more) would cost it ~1.7 MB. So mypy sees a dataclass and the interpreter a small stand-in that only makes
the keyword __init__ (every field is required)."""

from __future__ import annotations

import base64
import json
import os
import sys

TYPE_CHECKING = False  # not typing's: see statefile
if TYPE_CHECKING:
    from dataclasses import dataclass
    from typing import Any
else:
    def dataclass(cls):
        names = tuple(cls.__annotations__)

        def __init__(self, **kw):
            missing, unknown = set(names) - set(kw), set(kw) - set(names)
            if missing or unknown:
                raise TypeError(f"Handover: missing {sorted(missing)}, unknown {sorted(unknown)}")
            for name in names:
                setattr(self, name, kw[name])

        cls.__init__ = __init__
        return cls


@dataclass
class Handover:
    id: str
    state_dir: str
    sock_dir: str
    root: str
    tty: bool
    fds: dict[str, int]
    """agent, server (the control socket), with -t tty, and resolv_dir (see resolv_name): inheritable across
    the exec."""
    qemu_pid: int
    qmp_sock: str
    share_dir: str
    own_netns: bool
    nics: dict[str, dict[str, Any]]
    dns_server: str | None
    max_vcpus: int
    cpuset_pinned: bool
    boot: dict[str, Any]
    restored: bool
    cgroup_path: str
    resources: dict[str, Any]
    vm: dict[str, Any]
    """The VM's allowance on the host (limits.vm)."""
    log: dict[str, Any]
    sys_path: list[str]
    unread: bytes
    """What the set-up had read from the agent's channel but not consumed."""
    early: list[tuple[int, int, bytes]]
    """Agent frames that arrived before start, for the resident to handle."""
    late_network: bool
    """No veth at create and no hook that could have made one: Docker 26+ configures the netns after create,
    so start joins the first veth first (Docker 20.10's libnetwork-setkey hook ran at create)."""
    resolv_name: str | None
    """With late_network, when create found no embedded DNS server: resolv.conf's name in fds["resolv_dir"],
    read at start."""


def to_json(h: Handover) -> dict[str, Any]:
    d = {name: getattr(h, name) for name in Handover.__annotations__}
    d["unread"] = base64.b64encode(h.unread).decode()
    d["early"] = [[k, i, base64.b64encode(p).decode()] for k, i, p in h.early]
    return d


def from_json(d: dict[str, Any]) -> Handover:
    return Handover(**{**d, "unread": base64.b64decode(d.get("unread") or ""),
                       "early": [(int(k), int(i), base64.b64decode(p)) for k, i, p in d.get("early") or []]})


def inheritable(fd: int) -> int:
    fd = os.dup(fd)
    os.set_inheritable(fd, True)
    return fd


def become_resident(h: Handover) -> None:
    """exec a fresh interpreter that imports only what a running container needs (no ssl, no qemu.qmp)."""
    with open(os.path.join(h.state_dir, "handover.json"), "w") as f:
        json.dump(to_json(h), f)
    boot_line = ("import sys; sys.modules['ssl'] = None; import json; h = json.load(open(sys.argv[1])); "
                 "sys.path[:0] = h['sys_path']; from runtime.runvm.shim.vm_shim import resident_main; "
                 "resident_main(sys.argv[1], h)")
    try:
        os.execv(sys.executable, [sys.executable, "-S", "-c", boot_line, os.path.join(h.state_dir, "handover.json")])
    except OSError:
        os._exit(255)
