"""Fixtures for runvm's own tests: a hand-made OCI bundle driven through the runvm CLI, Docker containers labelled
for clean-up, and leftover checks (state dirs, socket dirs, processes, cgroups, mounts, netns) by container id."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from harness import paths
from runtime.runvm.state import Store

IMAGE = "vmparity/busybox:latest"
LABEL = {"vmparity.test": "runvm"}
RUNVM = str(paths.VENV / "bin" / "runvm")
DOCKER_ROOT = "/var/run/docker/runtime-runc/moby"
CGROUP = Path("/sys/fs/cgroup")
TEST_CGROUP_PARENT = "vmparity-runvm-test"


# ---- processes and leftovers --------------------------------------------------------------------------

def cmdlines() -> dict[int, str]:
    """Every live host process's argv joined with spaces (zombies have none and are left out)."""
    out: dict[int, str] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            raw = Path(f"/proc/{entry.name}/cmdline").read_bytes()
        except OSError:
            continue
        if raw:
            out[int(entry.name)] = raw.replace(b"\0", b" ").decode(errors="replace")
    return out


def children(pid: int) -> list[int]:
    kids: list[int] = []
    with contextlib.suppress(OSError):
        for task in os.scandir(f"/proc/{pid}/task"):
            kids += [int(k) for k in Path(task.path, "children").read_text().split()]
    return kids


def comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def qemu_child(pid: int) -> int:
    """The container's QEMU: the vm-shim's (State.Pid's) child."""
    found = [k for k in children(pid) if comm(k).startswith("qemu")]
    assert len(found) == 1, f"expected one QEMU child of {pid}, found {found} among {children(pid)}"
    return found[0]


def cgroup_dirs(rel: str) -> list[Path]:
    return [p for p in CGROUP.glob("*/" + rel.strip("/")) if p.is_dir()]


def leftovers(root: str, container_id: str, cgroup_path: str | None = None) -> list[str]:
    """What a runvm container can leave on the host, by id: state dir, socket dir, processes, cgroups, mounts."""
    store = Store(root)
    found = []
    state_dir = Path(root) / container_id
    if state_dir.exists():
        found.append(f"state dir {state_dir}")
    if store.sock_dir(container_id).exists():
        found.append(f"socket dir {store.sock_dir(container_id)}")
    needle = str(state_dir)
    resolved = str(Path(root).resolve() / container_id)
    for pid, argv in cmdlines().items():
        if pid != os.getpid() and (needle in argv or resolved in argv or f" {container_id}" in argv):
            found.append(f"process {pid} ({comm(pid)}): {argv[:160]}")
    for d in cgroup_dirs(cgroup_path or f"/runvm/{container_id}"):
        found.append(f"cgroup {d}")
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        if container_id in line:
            found.append(f"mount {line}")
    return found


def wait_clean(check: Callable[[], list[str]], timeout: float = 10.0) -> list[str]:
    """Poll until nothing is left (processes take a moment to be reaped); returns what is still there."""
    deadline = time.monotonic() + timeout
    while True:
        left = check()
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.1)


def docker_leftovers(cid: str) -> list[str]:
    """A removed Docker container under runvm: nothing of it in runvm's roots, /proc, cgroups or mountinfo."""
    found = leftovers(DOCKER_ROOT, cid, cgroup_path=f"/docker/{cid}")
    if (Path("/run/runvm") / cid).exists():
        found.append(f"state dir /run/runvm/{cid}")
    found += [f"host tap {p.name}" for p in Path("/sys/class/net").glob("vmtap*")]
    return found


def netns_mounts() -> set[str]:
    """Docker's netns bind mounts (nsfs) in the host mount namespace."""
    out = set()
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        if " - nsfs " in line and fields[4].startswith("/run/docker/netns/"):
            out.add(fields[4])
    return out


def orphan_netns(client: Any) -> set[str]:
    """nsfs mounts under /run/docker/netns that no existing container owns (`default` is the host's)."""
    owned = {"/run/docker/netns/default"}
    for c in client.containers.list(all=True, ignore_removed=True):
        with contextlib.suppress(Exception):
            key = c.attrs["NetworkSettings"].get("SandboxKey") or ""
            owned.add(key.replace("/var/run/", "/run/"))
    return netns_mounts() - owned


# ---- the runvm CLI with a hand-made bundle ----------------------------------------------------------

@dataclass
class Runvm:
    """runvm with its own --root and a JSON --log, both under the test's tmp_path."""

    root: Path
    log: Path
    workdir: Path
    created: list[str] = field(default_factory=list)
    attempted: list[str] = field(default_factory=list)

    def argv(self, *args: str) -> list[str]:
        return [RUNVM, "--root", str(self.root), "--log", str(self.log), "--log-format", "json", *args]

    def __call__(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """For commands that do not leave a process holding the pipes (not create)."""
        return subprocess.run(self.argv(*args), capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)

    def create(self, cid: str, bundle: Path, *extra: str, flag: str = "--bundle",
               stdin: int = subprocess.DEVNULL) -> tuple[int, Path, Path]:
        """`create` with the shim's stdout/stderr on files and stdin /dev/null (what containerd gives a container
        without -i) unless told; returns (rc, stdout path, stderr path)."""
        out, err = self.workdir / f"{cid}.out", self.workdir / f"{cid}.err"
        with open(out, "wb") as o, open(err, "wb") as e:
            rc = subprocess.run(self.argv("create", flag, str(bundle), *extra, cid), stdin=stdin,
                                stdout=o, stderr=e, timeout=240).returncode
        self.attempted.append(cid)
        if rc == 0:
            self.created.append(cid)
        return rc, out, err

    def state(self, cid: str) -> dict[str, Any]:
        r = self("state", cid)
        assert r.returncode == 0, f"state {cid}: rc {r.returncode}, log: {self.log_lines()[-1:]}"
        return json.loads(r.stdout)

    def wait_status(self, cid: str, status: str, timeout: float = 15) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            st = self.state(cid)
            if st["status"] == status or time.monotonic() > deadline:
                return st
            time.sleep(0.1)

    def log_lines(self) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines() if line.strip()]

    def errors(self) -> list[str]:
        return [rec["msg"] for rec in self.log_lines() if rec.get("level") == "error"]


@pytest.fixture(scope="session")
def rootfs(tmp_path_factory: pytest.TempPathFactory, docker_client: Any) -> Path:
    """The busybox image's filesystem, exported once from a created (never started) container."""
    dest = tmp_path_factory.mktemp("runvm-rootfs") / "rootfs"
    dest.mkdir()
    ctr = docker_client.containers.create(IMAGE, labels=LABEL)
    try:
        export = subprocess.Popen(["docker", "export", ctr.id], stdout=subprocess.PIPE)
        subprocess.run(["tar", "-C", str(dest), "-x"], stdin=export.stdout, check=True)
        assert export.wait() == 0
    finally:
        ctr.remove(force=True)
    assert (dest / "bin" / "busybox").exists()
    return dest


@pytest.fixture(scope="session")
def runc_spec(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """`runc spec`'s default config.json, the starting point every bundle edits."""
    d = tmp_path_factory.mktemp("runc-spec")
    subprocess.run(["runc", "spec", "--bundle", str(d)], check=True)
    return json.loads((d / "config.json").read_text())


BundleFactory = Callable[..., Path]


@pytest.fixture
def make_bundle(tmp_path: Path, rootfs: Path, runc_spec: dict[str, Any]) -> BundleFactory:
    """make_bundle(name, args, **edits): a bundle dir whose config.json runs args (no tty) on the shared rootfs."""

    def make(name: str, args: list[str], sysctl: dict[str, str] | None = None,
             cgroups_path: str | None = None, annotations: dict[str, str] | None = None) -> Path:
        spec = json.loads(json.dumps(runc_spec))
        spec["root"] = {"path": str(rootfs), "readonly": False}
        spec["process"]["terminal"] = False
        spec["process"]["args"] = args
        if sysctl:
            spec["linux"]["sysctl"] = sysctl
        if cgroups_path:
            spec["linux"]["cgroupsPath"] = cgroups_path
        if annotations:
            spec["annotations"] = annotations
        b = tmp_path / "bundles" / name
        b.mkdir(parents=True)
        (b / "config.json").write_text(json.dumps(spec, indent=1))
        return b

    return make


@pytest.fixture
def runvm(tmp_path: Path) -> Iterator[Runvm]:
    """A runvm CLI with a private --root; every container it created is force-deleted afterwards."""
    rv = Runvm(root=tmp_path / "root", log=tmp_path / "log.json", workdir=tmp_path)
    yield rv
    for cid in rv.created:
        rv("delete", "--force", cid)
    for cid in {*rv.created, *rv.attempted}:  # runvm can leave empty cgroup dirs behind (reported bugs): ours
        for parent in ("runvm", TEST_CGROUP_PARENT):
            for d in cgroup_dirs(f"{parent}/{cid}"):
                _rmdir_soon(d)
    for d in cgroup_dirs(TEST_CGROUP_PARENT):
        _rmdir_soon(d)


def _rmdir_soon(d: Path, timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while d.exists() and time.monotonic() < deadline:
        try:
            d.rmdir()
        except OSError:
            time.sleep(0.1)


# ---- Docker ------------------------------------------------------------------------------------------

def _remove_labelled(client: Any) -> None:
    selector = {"label": [f"{k}={v}" for k, v in LABEL.items()]}
    for c in client.containers.list(all=True, filters=selector, ignore_removed=True):
        with contextlib.suppress(Exception):
            c.remove(force=True)
    for n in client.networks.list(filters=selector):
        with contextlib.suppress(Exception):
            n.remove()


@pytest.fixture(scope="session")
def dk(docker_client: Any) -> Iterator[Any]:
    """The Docker client, with everything labelled vmparity.test=runvm removed before and after the session."""
    _remove_labelled(docker_client)
    yield docker_client
    _remove_labelled(docker_client)


@pytest.fixture(scope="session")
def current_dk() -> Iterator[Any]:
    """The current stack's daemon (Docker 28, containerd 2), which scripts/setup-host starts, cleaned as dk."""
    from harness import stack_data, stacks

    client = stacks.endpoint(stack_data.get("current")).client()
    _remove_labelled(client)
    yield client
    _remove_labelled(client)
    client.close()


def docker_cli(*args: str, input: bytes | None = None, timeout: float = 120) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["docker", *args], input=input, capture_output=True, timeout=timeout,
                          stdin=None if input is not None else subprocess.DEVNULL)


def wait_log(container: Any, text: str, timeout: float = 60) -> str:
    """Wait until text shows up in the container's logs (e.g. a "ready" line after a trap is installed)."""
    deadline = time.monotonic() + timeout
    while True:
        logs = container.logs().decode(errors="replace")
        if text in logs or time.monotonic() > deadline:
            return logs
        time.sleep(0.1)
