"""Bringing a Docker stack up and reaching it: the host's own dockerd, or a stack's dockerd in a container on the
host daemon (stacks/*.yaml says which).

A container stack shares the host's network and pid namespaces (its own bridge, no iptables of its own, as the
suite's disposable daemons; one host FORWARD rule lets its bridged frames through), so the host sees its
containers' processes, cgroups, links and ports as it sees the host daemon's, and every host-side oracle reads
the same places. Its exec-root and data-root are host directories bound at the same paths with shared
propagation: the bundles, root filesystems and netns files its containerd makes are visible on the host, where a
runtime that comes from the host (not from the stack's packages) runs. Such a runtime is registered through a
wrapper that enters the host's mount namespace first."""

from __future__ import annotations

import contextlib
import json
import shlex
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
from pyroute2 import IPRoute

from harness import paths, procs, runtime_data
from harness.setup import dockerd, images, stack_image
from harness.stack_data import CONTAINER, VM, StackData
from harness.waiting import WaitTimedOut, wait_for

LABEL = "vmparity.stack"
DROPPED_CAPS = ["SYS_RESOURCE"]
"""Not in this host's bounding set: runc refuses a container asking for it (so no --privileged either)."""


@dataclass(frozen=True, eq=False)
class Endpoint:
    """How the suite reaches one stack's daemon, and what it is made of."""

    stack: str
    docker_url: str
    exec_root: Path
    dockerd_pid: int | None
    kind: str
    versions: dict[str, str] = field(default_factory=dict)
    """What the daemon reports: Docker, API, containerd, runc, cgroup version and driver."""
    packages: dict[str, str] = field(default_factory=dict)
    """The stack's Debian packages and their versions (a container stack's image says)."""
    image: str | None = None

    def disposable_roots(self) -> tuple[Path, Path]:
        """(data, exec) bases for disposable daemons of this stack: inside its shared directories."""
        return self.exec_root / "daemons-data", self.exec_root / "daemons"

    def runtimes_config(self) -> dict[str, Any]:
        """The runtimes this stack's dockerd was configured with (for disposable daemons of the same stack)."""
        try:
            return dict(json.loads((self.exec_root / "daemon.json").read_text()).get("runtimes") or {})
        except (OSError, ValueError):
            return {}

    @property
    def launcher(self) -> tuple[str, ...]:
        """An argv prefix that runs a command with the stack's binaries (its mount namespace); empty on the host."""
        if self.kind != CONTAINER or self.dockerd_pid is None:
            return ()
        return ("nsenter", f"--mount=/proc/{self.dockerd_pid}/ns/mnt", "--")

    def client(self, timeout: int = 180) -> docker.DockerClient:
        return docker.DockerClient(base_url=self.docker_url, timeout=timeout)


def container_name(stack: StackData) -> str:
    return f"vmparity-stack-{stack.name}"


def exec_root(stack: StackData) -> Path:
    return Path("/run/vmparity/stacks") / stack.name


def data_root(stack: StackData) -> Path:
    return paths.STATE / "stacks" / stack.name / "data"


def bridge(stack: StackData) -> str:
    return f"vmps-{stack.name}"[:15]


def _socket(stack: StackData) -> Path:
    return exec_root(stack) / "docker.sock"


def _shared_bind(directory: Path) -> None:
    """Make a directory its own shared mount, so mounts made below it in the stack's container show on the host."""
    directory.mkdir(parents=True, exist_ok=True)
    if str(directory) not in procs.mounts_under(str(directory)):
        subprocess.run(["mount", "--bind", str(directory), str(directory)], check=True)
    subprocess.run(["mount", "--make-shared", str(directory)], check=True)


ANCHOR = """
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
keep = int(sys.argv[1], 16)
for cap in range(64):
    if not keep >> cap & 1:
        libc.prctl(24, cap, 0, 0, 0)  # PR_CAPBSET_DROP; EINVAL past the last capability the kernel knows
os.execv("/bin/sleep", ["sleep", "infinity"])
"""
"""A process in the host's mount namespace whose capabilities are a subset of the stack container's: the kernel
lets the container open a process's namespaces only then (/proc/1, with capabilities the container lacks, is
refused), so the wrapper of a runtime from the host enters the host's mount namespace through it."""


def _anchor_file(stack: StackData) -> Path:
    return exec_root(stack) / "host-anchor.json"


def anchor_pid(stack: StackData) -> int | None:
    try:
        rec = json.loads(_anchor_file(stack).read_text())
    except (OSError, ValueError):
        return None
    return rec["pid"] if procs.start_time(rec["pid"]) == rec.get("start") else None


def _ensure_anchor(stack: StackData, caps_hex: str) -> int:
    pid = anchor_pid(stack)
    if pid is not None:
        return pid
    proc = subprocess.Popen(["python3", "-c", ANCHOR, caps_hex], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    wait_for(lambda: procs.comm(proc.pid) == "sleep", "the stack's host anchor process", 10, interval=0.05)
    _anchor_file(stack).write_text(json.dumps({"pid": proc.pid, "start": procs.start_time(proc.pid)}))
    return proc.pid


def _container_caps(pid: int) -> str:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("CapBnd:"):
            return line.split()[1]
    raise RuntimeError(f"no CapBnd in /proc/{pid}/status")


def _host_runtimes(stack: StackData) -> dict[str, str]:
    """Runtimes whose packages the stack does not hold but the host has: name -> the host's executable."""
    out = {}
    for r in runtime_data.load().values():
        if r.path is None or (r.packages and set(r.packages) <= set(stack.packages)):
            continue
        if r.registration is not None:
            out[r.name] = r.registration["path"]
    return out


def _runtime_entries(stack: StackData, wrappers: Path) -> dict[str, Any]:
    """The stack daemon's runtimes: those whose packages the stack holds, from the stack; the rest, from the host
    through a wrapper (written by _wire_host_runtimes once the container runs)."""
    entries: dict[str, Any] = {}
    from_host = _host_runtimes(stack)
    for r in runtime_data.load().values():
        if r.path is None:
            continue  # dockerd knows it (runc): the stack's own
        if r.name in from_host:
            entry: dict[str, Any] = {"path": str(wrappers / r.name)}
        elif r.packages and set(r.packages) <= set(stack.packages):
            entry = {"path": r.expand((r.path,))[0]}
        else:
            continue
        if r.args:
            entry["runtimeArgs"] = list(r.args)
        entries[r.name] = entry
    return entries


def _wire_host_runtimes(stack: StackData, container_pid: int) -> None:
    """The anchor, and each wrapper entering the host's mount namespace through it."""
    anchor = _ensure_anchor(stack, _container_caps(container_pid))
    wrappers = exec_root(stack) / "bin"
    wrappers.mkdir(parents=True, exist_ok=True)
    for name, exe in _host_runtimes(stack).items():
        tmp = wrappers / f".{name}.tmp"
        tmp.write_text(f"#!/bin/sh\n# {name} comes from the host: enter the host's mount namespace first\n"
                       f"exec nsenter --mount=/proc/{anchor}/ns/mnt -- {exe} \"$@\"\n")
        tmp.chmod(0o755)
        tmp.replace(wrappers / name)


def _create_bridge(name: str, subnet: str) -> None:
    addr, prefix = subnet.split("/")
    with IPRoute() as ipr:
        if ipr.link_lookup(ifname=name):
            return
        ipr.link("add", ifname=name, kind="bridge")
        idx = ipr.link_lookup(ifname=name)[0]
        ipr.addr("add", index=idx, address=addr, prefixlen=int(prefix))
        ipr.link("set", index=idx, state="up")


def _bridge_subnet(name: str) -> str | None:
    with IPRoute() as ipr:
        idx = ipr.link_lookup(ifname=name)
        if not idx:
            return None
        for a in ipr.get_addr(index=idx[0], family=2):
            return f"{a.get_attr('IFA_ADDRESS')}/{a['prefixlen']}"
    return None


def _pool(subnet: str) -> str:
    return ".".join(subnet.split(".")[:2]) + ".0.0/16"


def _forward_chain() -> str:
    listed = subprocess.run(["iptables", "-S", "DOCKER-USER"], capture_output=True, text=True)
    return "DOCKER-USER" if listed.returncode == 0 else "FORWARD"


def _bridged_rule(stack: StackData, pool: str) -> list[str]:
    return ["-s", pool, "-d", pool, "-m", "physdev", "--physdev-is-bridged",
            "-m", "comment", "--comment", f"vmparity stack {stack.name}", "-j", "ACCEPT"]


def _allow_bridged(stack: StackData, pool: str) -> None:
    """Frames between two containers on one of the stack's bridges pass the host's FORWARD chain.

    With br_netfilter loaded (the host daemon loads it), bridged frames traverse the host's FORWARD chain, whose
    policy the host daemon sets to DROP and whose ACCEPT rules name only the host daemon's bridges; a stack
    daemon without iptables adds none for its own, so every container-to-container packet on its networks was
    dropped. One rule for the stack's address pool, bridged frames only: routed traffic between two of its
    networks stays as isolated as Docker keeps it."""
    chain, rule = _forward_chain(), _bridged_rule(stack, pool)
    if subprocess.run(["iptables", "-C", chain, *rule], capture_output=True).returncode != 0:
        subprocess.run(["iptables", "-I", chain, "1", *rule], check=True, capture_output=True)


def _drop_bridged_rules(stack: StackData) -> list[str]:
    chain, tag = _forward_chain(), f'"vmparity stack {stack.name}"'
    listed = subprocess.run(["iptables", "-S", chain], capture_output=True, text=True).stdout.splitlines()
    gone = []
    for line in listed:
        if tag in line and line.startswith(f"-A {chain} "):
            rule = shlex.split(line)[2:]
            subprocess.run(["iptables", "-D", chain, *rule], capture_output=True)
            gone.append(f"iptables {chain} {' '.join(rule[:4])}")
    return gone


def _free_octet() -> int:
    with IPRoute() as ipr:
        used = {r.get_attr("RTA_DST") for r in ipr.get_routes(table=254)}
    for octet in range(150, 200):
        if not any(u and u.startswith(f"10.{octet}.") for u in used):
            return octet
    raise RuntimeError("no free 10.150-199.0.0/16 range for a stack's bridge")


def _running(host: docker.DockerClient, stack: StackData) -> Any | None:
    try:
        c = host.containers.get(container_name(stack))
    except docker.errors.NotFound:
        return None
    return c if c.status == "running" else None


def _pid_in_container(stack: StackData) -> int | None:
    try:
        return int((exec_root(stack) / "docker.pid").read_text().strip())
    except (OSError, ValueError):
        return None


def _ping(stack: StackData) -> bool:
    try:
        return _socket(stack).exists() and bool(docker.DockerClient(base_url=f"unix://{_socket(stack)}",
                                                                   timeout=5).ping())
    except Exception:
        return False


def up(stack: StackData, *, log: Any = print, timeout: float = 90) -> Endpoint:
    """The stack's daemon, started when it is not running. Idempotent."""
    if stack.local:
        return host_endpoint(stack)
    _not_from_here(stack)
    host = dockerd.client(timeout=300)
    tag, done = stack_image.ensure(host, stack)
    log(f"stack {stack.name}: image {tag} {done}")
    running = _running(host, stack)
    if running is not None and running.image.tags and tag not in running.image.tags:
        log(f"stack {stack.name}: its container runs an older image; replacing it")
        down(stack)
        running = None
    if running is None:
        _start(host, stack, tag)
    pid = host.containers.get(container_name(stack)).attrs["State"]["Pid"]
    subnet = _bridge_subnet(bridge(stack))
    if subnet is not None:
        _allow_bridged(stack, _pool(subnet))
    _wire_host_runtimes(stack, int(pid))
    try:
        wait_for(lambda: _ping(stack), f"the {stack.name} stack's dockerd answering on {_socket(stack)}", timeout,
                 interval=0.3)
    except WaitTimedOut as e:
        logs = host.containers.get(container_name(stack)).logs(tail=30).decode(errors="replace")
        raise SystemExit(f"vmparity: {e}; its last log lines:\n{logs}") from e
    ep = _container_endpoint(stack)
    log(f"stack {stack.name}: test image {images.ensure(ep.client())}")
    return ep


def _start(host: docker.DockerClient, stack: StackData, tag: str) -> None:
    with contextlib.suppress(docker.errors.NotFound):
        host.containers.get(container_name(stack)).remove(force=True)
    ex, data = exec_root(stack), data_root(stack)
    # a fresh data-root every start: Docker 28 restarted on a kept one deletes the host's docker0 (the host
    # daemon's default bridge) while it restores its own default network; the test image reloads in a second
    procs.unmount_under(str(data))
    shutil.rmtree(data, ignore_errors=True)
    for d in (ex, data):
        _shared_bind(d)
    subnet = _bridge_subnet(bridge(stack)) or f"10.{_free_octet()}.0.1/24"
    _create_bridge(bridge(stack), subnet)
    pool = _pool(subnet)
    config = {"runtimes": _runtime_entries(stack, ex / "bin"), "experimental": True}
    (ex / "daemon.json").write_text(json.dumps(config, indent=1))
    argv = ["dockerd", "--config-file", str(ex / "daemon.json"), "--data-root", str(data), "--exec-root", str(ex),
            "-H", f"unix://{_socket(stack)}", "--pidfile", str(ex / "docker.pid"), "--bridge", bridge(stack),
            "--iptables=false", "--ip-masq=false", "--ip-forward=false",
            "--default-address-pool", f"base={pool},size=24", "--cgroup-parent", f"/vmparity-stack-{stack.name}"]
    script = "mount -o remount,rw /sys && exec " + " ".join(_quote(a) for a in argv)
    # the docker CLI, not the SDK: the SDK cannot unmask /proc and /sys paths (systempaths=unconfined)
    binds = [("/sys/fs/cgroup", "rw"), ("/dev", "rw"), ("/lib/modules", "ro"), ("/tmp", "rw"),
             (str(ex), "rw,rshared"), (str(data), "rw,rshared")]
    cli = ["docker", "-H", f"unix://{paths.DOCKER_SOCK}", "run", "-d", "--name", container_name(stack),
           "--label", f"{LABEL}={stack.name}", "--network", "host", "--pid", "host", "--cap-add", "ALL",
           *[a for cap in DROPPED_CAPS for a in ("--cap-drop", cap)],
           "--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
           "--security-opt", "systempaths=unconfined", "--device-cgroup-rule", "a *:* rwm",
           "--tmpfs", "/run", "--tmpfs", "/var/run",
           *[a for src, mode in binds for a in ("-v", f"{src}:{src}:{mode}")],
           tag, "sh", "-c", script]
    done = subprocess.run(cli, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise SystemExit(f"vmparity: starting the {stack.name} stack's container failed: {done.stderr.strip()}")


def _quote(arg: str) -> str:
    return "'" + arg.replace("'", "'\"'\"'") + "'"


def _container_endpoint(stack: StackData) -> Endpoint:
    client = docker.DockerClient(base_url=f"unix://{_socket(stack)}", timeout=30)
    packages: dict[str, str] = {}
    image = None
    with contextlib.suppress(docker.errors.DockerException):
        c = dockerd.client(timeout=30).containers.get(container_name(stack))
        image = c.attrs.get("Config", {}).get("Image")
        packages = json.loads((c.labels or {}).get("vmparity.stack.versions") or "{}")
    return Endpoint(stack.name, f"unix://{_socket(stack)}", exec_root(stack), _pid_in_container(stack), CONTAINER,
                    versions=components(client), packages=packages, image=image)


def host_endpoint(stack: StackData) -> Endpoint:
    packages = stack_image.installed_versions(Path("/"), stack.packages) if stack.packages else {}
    return Endpoint(stack.name, f"unix://{paths.DOCKER_SOCK}", paths.DOCKER_EXEC_ROOT, dockerd.running_environ()[0],
                    stack.kind, versions=components(dockerd.client(timeout=30)), packages=packages)


def endpoint(stack: StackData) -> Endpoint:
    """The stack's daemon if it is up, without starting anything (SystemExit naming how to start it)."""
    if stack.local:
        return host_endpoint(stack)
    _not_from_here(stack)
    if not _ping(stack):
        raise SystemExit(f"vmparity: the {stack.name} stack is not running; `vmparity stack up {stack.name}` "
                         "(or scripts/setup-host) starts it")
    return _container_endpoint(stack)


def _not_from_here(stack: StackData) -> None:
    if stack.kind == VM:
        raise SystemExit(f"vmparity: the {stack.name} stack is another machine, and the suite observes a host from "
                         f"inside it: `vmparity remote {stack.name}` runs it there and brings its results back")


def components(client: docker.DockerClient) -> dict[str, str]:
    """Docker, API, containerd and runc versions as the daemon reports them."""
    info, version = client.info(), client.version()
    parts = {c.get("Name"): c.get("Version") for c in version.get("Components") or []}
    return {"docker": str(version.get("Version")), "api": str(version.get("ApiVersion")),
            "containerd": str(parts.get("containerd") or (info.get("ContainerdCommit") or {}).get("ID") or ""),
            "runc": str(parts.get("runc") or (info.get("RuncCommit") or {}).get("ID") or ""),
            "cgroup": f"v{info.get('CgroupVersion')} {info.get('CgroupDriver')}"}


def down(stack: StackData) -> list[str]:
    """Stop the stack's daemon and remove its container, bridge, mounts, anchor and data."""
    if stack.kind != CONTAINER or stack.local:
        return []
    done = []
    pid = anchor_pid(stack)
    if pid is not None:
        procs.kill_tree(pid)
        done.append(f"host anchor {pid}")
    host = dockerd.client(timeout=120)
    try:
        host.containers.get(container_name(stack)).remove(force=True)
        done.append(f"container {container_name(stack)}")
    except docker.errors.NotFound:
        pass
    with IPRoute() as ipr:
        for idx in ipr.link_lookup(ifname=bridge(stack)):
            ipr.link("del", index=idx)
            done.append(f"bridge {bridge(stack)}")
    done += _drop_bridged_rules(stack)
    for d in (exec_root(stack), data_root(stack)):
        done += [f"mount {p}" for p in procs.unmount_under(str(d))]
    shutil.rmtree(exec_root(stack), ignore_errors=True)
    shutil.rmtree(data_root(stack), ignore_errors=True)
    return done
