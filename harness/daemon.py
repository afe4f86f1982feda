"""A disposable dockerd (own data-root, exec-root, socket, pidfile and bridge) for scenarios that can hurt the host.

Every daemon writes an owner record first, so one left behind by a killed run is found and torn down later
(see harness/cleanup.py).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import docker
import psutil
from pyroute2 import IPRoute

from harness import paths, procs
from harness.setup import criu, images
from harness.waiting import WaitTimedOut, wait_for

if TYPE_CHECKING:
    from harness.stacks import Endpoint

DAEMONS = paths.STATE / "daemons"
EXEC_BASE = Path("/run/vmparity")


@dataclass
class DaemonRecord:
    """What a teardown needs, on disk from the first moment."""

    name: str
    run_id: str
    data_root: str
    exec_root: str
    bridge: str
    subnet: str
    pid: int | None = None
    links_before: list[str] = field(default_factory=list)

    @property
    def path(self) -> Path:
        return DAEMONS / self.name / "owner.json"

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self)))
        os.replace(tmp, self.path)

    @classmethod
    def load(cls, path: Path) -> DaemonRecord:
        return cls(**json.loads(path.read_text()))


def _free_subnet_octet() -> int:
    with IPRoute() as ipr:
        used = {r.get_attr("RTA_DST") for r in ipr.get_routes(table=254)}
    for octet in range(200, 250):
        if not any(u and u.startswith(f"10.{octet}.") for u in used):
            return octet
    raise RuntimeError("no free 10.200-249.0.0/16 range for a disposable daemon's bridge")


def _link_names() -> set[str]:
    with IPRoute() as ipr:
        return {link.get_attr("IFLA_IFNAME") for link in ipr.get_links()}


def _main_runtimes() -> dict[str, Any]:
    try:
        return json.loads(paths.DAEMON_JSON.read_text()).get("runtimes", {})
    except (OSError, json.JSONDecodeError):
        return {}


class DisposableDaemon:
    def __init__(self, run_id: str, *, default_runtime: str | None = None, env: dict[str, str] | None = None,
                 flags: list[str] | None = None, experimental: bool = True,
                 runtimes: dict[str, Any] | None = None, stack: Endpoint | None = None) -> None:
        self.name = "d" + secrets.token_hex(3)
        octet = _free_subnet_octet()
        # under a container stack, the daemon is the stack's dockerd, started in the stack's mount namespace, with
        # its roots where that namespace and the host see the same files (the stack's shared directories)
        self.launcher = stack.launcher if stack is not None else ()
        data_base, exec_base = (stack.disposable_roots() if self.launcher and stack is not None
                                else (DAEMONS, EXEC_BASE))
        self.record = DaemonRecord(
            name=self.name, run_id=run_id, data_root=str(data_base / self.name / "data"),
            exec_root=str(exec_base / self.name), bridge=f"vmpb{self.name[1:]}", subnet=f"10.{octet}.0.1/24",
        )
        self.main_runtimes = stack.runtimes_config() if stack is not None and self.launcher else _main_runtimes()
        self.pool = f"10.{octet}.0.0/16"
        self.default_runtime = default_runtime
        self.env = env or {}
        self.flags = flags or []
        self.experimental = experimental
        self.extra_runtimes = runtimes or {}
        """Runtimes this daemon knows besides the host's (e.g. the suite's fault-injecting wrapper)."""
        self._client: docker.DockerClient | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def socket(self) -> str:
        return f"{self.record.exec_root}/docker.sock"

    @property
    def host(self) -> str:
        return f"unix://{self.socket}"

    @property
    def client(self) -> docker.DockerClient:
        if self._client is None:
            self._client = docker.DockerClient(base_url=self.host, timeout=120)
        return self._client

    def _create_bridge(self) -> None:
        addr, prefix = self.record.subnet.split("/")
        with IPRoute() as ipr:
            ipr.link("add", ifname=self.record.bridge, kind="bridge")
            idx = ipr.link_lookup(ifname=self.record.bridge)[0]
            ipr.addr("add", index=idx, address=addr, prefixlen=int(prefix))
            ipr.link("set", index=idx, state="up")

    def start(self, timeout: float = 60) -> DisposableDaemon:
        rec = self.record
        rec.links_before = sorted(_link_names())
        rec.save()
        Path(rec.data_root).mkdir(parents=True, exist_ok=True)
        Path(rec.exec_root).mkdir(parents=True, exist_ok=True)
        self._create_bridge()
        config = {"runtimes": {**self.main_runtimes, **self.extra_runtimes}, "experimental": self.experimental}
        if self.default_runtime:
            config["default-runtime"] = self.default_runtime
        config_path = Path(rec.data_root).parent / "daemon.json"
        config_path.write_text(json.dumps(config))
        log = open(Path(rec.data_root).parent / "dockerd.log", "ab")  # noqa: SIM115 - handed to the child
        argv = [*self.launcher, "dockerd", "--config-file", str(config_path), "--data-root", rec.data_root,
                "--exec-root", rec.exec_root, "-H", self.host, "--pidfile", f"{rec.exec_root}/docker.pid",
                "--bridge", rec.bridge, "--iptables=false", "--ip-masq=false", "--ip-forward=false",
                "--default-address-pool", f"base={self.pool},size=24", *self.flags]
        # a swarm service must never make this daemon reach a registry: use the image it has; runc finds the
        # installed criu first on PATH, as under the host's dockerd (harness/setup/criu.py)
        env = {"PATH": criu.path_with_first(str(criu.bin_dir()), os.environ.get("PATH")),
               "DOCKER_SERVICE_PREFER_OFFLINE_IMAGE": "1", **self.env}
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env,
                                start_new_session=True)
        log.close()
        self._proc = proc
        rec.pid = proc.pid
        rec.save()

        def answers() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(f"disposable dockerd exited with {proc.returncode}: {self.log_tail()}")
            try:
                return os.path.exists(self.socket) and bool(self.client.ping())
            except Exception:
                return False

        try:
            wait_for(answers, f"the disposable dockerd on {self.socket} answering a ping", timeout, interval=0.2)
        except (RuntimeError, WaitTimedOut) as e:
            self.stop()
            raise RuntimeError(f"{e}; its log: {self.log_tail()}") from None
        images.ensure(self.client)
        return self

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = (Path(self.record.data_root).parent / "dockerd.log").read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> list[str]:
        """Tear everything down; returns what had to be removed the hard way (for the report)."""
        if self._client is not None:
            try:
                if self.client.info().get("Swarm", {}).get("LocalNodeState") == "active":
                    self.client.swarm.leave(force=True)
                for c in self.client.containers.list(all=True):
                    c.remove(force=True)
            except Exception:
                pass
            self._client.close()
            self._client = None
        forced = teardown(self.record)
        if self._proc is not None:  # reap it: a zombie dockerd would look like a leftover
            try:
                self._proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                forced.append(f"dockerd {self._proc.pid} did not exit")
            self._proc = None
        return forced

    def __enter__(self) -> DisposableDaemon:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _processes_of(rec: DaemonRecord) -> list[int]:
    """containerd shims (and their children) that belong to this daemon's containerd, found by exact path."""
    marker = f"{rec.exec_root}/containerd/"
    return [p.pid for p in psutil.process_iter() if any(marker in arg for arg in procs.cmdline(p.pid))]


def teardown(rec: DaemonRecord) -> list[str]:
    forced: list[str] = []
    if rec.pid and procs.alive(rec.pid) and rec.exec_root in " ".join(procs.cmdline(rec.pid)):
        procs.terminate(rec.pid, grace_s=20)
    for pid in _processes_of(rec):
        if procs.alive(pid):
            forced.append(f"process {pid} {' '.join(procs.cmdline(pid))[:120]}")
            procs.kill_tree(pid)
    for point in procs.unmount_under(rec.exec_root) + procs.unmount_under(rec.data_root):
        forced.append(f"mount {point}")
    with IPRoute() as ipr:
        before = set(rec.links_before)
        for link in ipr.get_links():
            name = link.get_attr("IFLA_IFNAME")
            if name == rec.bridge or (name not in before and name == "docker_gwbridge"):
                ipr.link("del", index=link["index"])
    shutil.rmtree(rec.exec_root, ignore_errors=True)
    shutil.rmtree(Path(rec.data_root).parent, ignore_errors=True)
    shutil.rmtree(rec.path.parent, ignore_errors=True)  # the owner record, apart from the roots under a stack
    return forced
