"""A container's on-disk state under --root: <root>/<id>/state.json plus the shim's sockets and logs.

The vm-shim writes status transitions; commands read them and check the shim is still the same live process
(pid plus its start time, so a recycled pid is never mistaken for the container)."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

from runtime.runvm import statefile
from runtime.runvm.errors import NotFound, RunvmError
from runtime.runvm.statefile import CREATED, PAUSED, RUNNING, STOPPED  # noqa: F401 - re-exported

try:  # hashlib would load OpenSSL (~8 ms), on every `runvm start`, `kill` and `delete`
    from _sha256 import sha256
except ImportError:  # pragma: no cover - an interpreter without the builtin module
    from hashlib import sha256

TYPE_CHECKING = False  # not typing's (~9 ms per invocation): see statefile
if TYPE_CHECKING:
    from typing import Any

ID_RE = re.compile(r"^[\w+\-.]+$")
SOCK_BASE = Path("/run/runvm-sock")


def check_id(container_id: str) -> str:
    if not container_id or not ID_RE.fullmatch(container_id) or container_id in (".", ".."):
        raise RunvmError(f"invalid container id format: {container_id!r}")
    return container_id


def proc_start_time(pid: int) -> int | None:
    """pid's start time in clock ticks since boot (/proc/PID/stat field 22), None if it is gone or a zombie.
    Read by hand, not through psutil: every `runvm state`, `start`, `kill` and `delete` asks this, and importing
    psutil costs ~20 ms, four runvm invocations per `docker run`."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


class State:
    """What a command needs to know about a container, as saved in state.json. A plain class: dataclasses
    costs every runvm invocation ~20 ms of imports (inspect, ast, tokenize), four invocations per `docker run`."""

    FIELDS: tuple[tuple[str, Any], ...] = (
        ("status", CREATED), ("pid", 0), ("pid_start", 0), ("created", ""), ("annotations", None),
        ("exit_code", None), ("oom_killed", False), ("accel", ""), ("boot", ""), ("boot_reason", ""),
        ("qemu_pid", 0), ("init_guest_pid", 0), ("extra", None))
    __slots__ = ("id", "bundle", "rootfs", *(name for name, _ in FIELDS))
    # the fields' types, for mypy (annotations only: __slots__ makes the attributes)
    id: str
    bundle: str
    rootfs: str
    status: str
    pid: int
    pid_start: int
    created: str
    annotations: dict[str, str]
    exit_code: int | None
    oom_killed: bool
    accel: str
    boot: str
    boot_reason: str
    qemu_pid: int
    init_guest_pid: int
    extra: dict[str, Any]

    def __init__(self, id: str, bundle: str, rootfs: str, **fields: Any) -> None:
        unknown = set(fields) - {name for name, _ in self.FIELDS}
        if unknown:
            raise TypeError(f"unknown state fields: {', '.join(sorted(unknown))}")
        self.id, self.bundle, self.rootfs = id, bundle, rootfs
        for name, default in self.FIELDS:
            value = fields.get(name, default)
            setattr(self, name, {} if value is None and name in ("annotations", "extra") else value)

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, State) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return f"State({self.to_dict()!r})"

    def alive(self) -> bool:
        return bool(self.pid) and proc_start_time(self.pid) == self.pid_start

    def effective_status(self) -> str:
        if self.status != STOPPED and not self.alive():
            return STOPPED
        return self.status

    def oci(self) -> dict[str, Any]:
        status = self.effective_status()
        return {"ociVersion": "1.0.2", "id": self.id, "pid": self.pid if status != STOPPED else 0,
                "status": status, "bundle": self.bundle, "rootfs": self.rootfs, "created": self.created,
                "annotations": self.annotations, "owner": ""}


class Store:
    def __init__(self, root: str) -> None:
        self.root = Path(root)

    def dir(self, container_id: str) -> Path:
        return self.root / check_id(container_id)

    def sock_dir(self, container_id: str) -> Path:
        """Sockets live under a short path: Docker's state dirs are too long for sun_path (108 bytes)."""
        digest = sha256(f"{self.root.resolve()}/{container_id}".encode()).hexdigest()[:16]
        return SOCK_BASE / digest

    def claim(self, container_id: str) -> Path:
        """Create the container's directory; fails if the id is taken (also between racing creates)."""
        self.root.mkdir(parents=True, exist_ok=True, mode=0o711)
        d = self.dir(container_id)
        try:
            d.mkdir(mode=0o711)
        except FileExistsError:
            raise RunvmError(f"container with id exists: {container_id}") from None
        sd = self.sock_dir(container_id)
        sd.mkdir(parents=True, exist_ok=True, mode=0o700)
        return d

    def load(self, container_id: str) -> State:
        path = self.dir(container_id) / "state.json"
        for _ in range(50):  # a create in progress has the dir but not yet the file
            try:
                return State(**json.loads(path.read_text()))
            except FileNotFoundError:
                if not self.dir(container_id).is_dir():
                    break
                time.sleep(0.02)
            except (json.JSONDecodeError, TypeError) as e:
                raise RunvmError(f"state of container {container_id} is corrupt: {e}") from e
        raise NotFound(f"container {container_id} does not exist")

    def save(self, state: State) -> None:
        statefile.write(str(self.dir(state.id)), state.to_dict())

    def update(self, container_id: str, **changes: Any) -> State:
        st = self.load(container_id)
        for k, v in changes.items():
            setattr(st, k, v)
        self.save(st)
        return st

    def remove(self, container_id: str) -> None:
        import shutil

        shutil.rmtree(self.dir(container_id), ignore_errors=True)
        shutil.rmtree(self.sock_dir(container_id), ignore_errors=True)

    def ids(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if (p / "state.json").exists())


def now_rfc3339() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t * 1e9) % 10**9:09d}Z"
