"""What an oracle gets: Docker operations under one runtime, labelled, logged as evidence, cleaned up."""

from __future__ import annotations

import contextlib
import json
import shlex
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import docker
import requests
import testinfra
from docker.models.containers import Container
from docker.models.networks import Network

from harness import labels

if TYPE_CHECKING:
    from harness.stacks import Endpoint


class Refused(Exception):
    """A Docker operation failed under the runtime being observed; the message is the evidence."""


class TimedOut(Exception):
    """A Docker operation (or the whole oracle) got no answer in time: a hang, never a deliberate refusal."""


class DaemonLost(Exception):
    """The Docker daemon stopped answering at all (connection refused or reset): the suite cannot observe."""


@dataclass
class ExecResult:
    code: int
    stdout: str
    stderr: str


@dataclass
class Evidence:
    dir: Path | None
    commands: list[str] = field(default_factory=list)

    def command(self, text: str) -> None:
        self.commands.append(text)

    def save(self, name: str, content: Any) -> None:
        if self.dir is None:
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        data = content if isinstance(content, str | bytes) else json.dumps(content, indent=1, default=str)
        (self.dir / name).write_bytes(data if isinstance(data, bytes) else data.encode())


def _flags(kwargs: dict[str, Any]) -> str:
    return " ".join(f"--{k.replace('_', '-')}={v}" for k, v in sorted(kwargs.items())
                    if k not in ("labels", "image"))


@contextlib.contextmanager
def refusals(what: str) -> Iterator[None]:
    """Docker's and the transport's failures during `what` become a Refused with Docker's own words."""
    try:
        yield
    except docker.errors.APIError as e:
        raise Refused(f"{what}: {e.explanation or e}") from e
    except docker.errors.ContainerError as e:
        raise Refused(f"{what}: exit {e.exit_status}: {e.stderr!r}") from e
    except requests.exceptions.ReadTimeout as e:
        raise TimedOut(f"{what}: no answer from Docker in time ({e.__class__.__name__})") from e
    except requests.exceptions.ConnectionError as e:
        raise DaemonLost(f"{what}: lost the connection to Docker ({e.__class__.__name__}: {e})") from e


class Ctx:
    """One oracle run under one runtime. Everything created here carries the run's labels and is removed."""

    def __init__(self, client: docker.DockerClient, runtime: str, run_id: str, cell: str, image: str,
                 evidence: Evidence, docker_host: str | None = None,
                 on_create: Callable[[str], None] | None = None, stack: Endpoint | None = None) -> None:
        self.client = client
        self.runtime = runtime
        self.run_id = run_id
        self.cell = cell
        self.image = image
        self.evidence = evidence
        self.docker_host = docker_host or "unix:///var/run/docker.sock"
        self.stack = stack
        """The stack the daemon belongs to: a disposable daemon is started from the same stack's binaries."""
        self.labels = labels.of(run_id, cell)
        self._containers: list[Container] = []
        self._networks: list[Network] = []
        self._volumes: list[Any] = []
        self.daemon_names: list[str] = []
        self._cleanups: list[Any] = []
        self.notes: dict[str, Any] = {}
        self._on_create = on_create or (lambda _id: None)

    # --- containers -------------------------------------------------------------------------------
    def run(self, command: list[str] | str | None = None, *, runtime: str | None = None,
            **kwargs: Any) -> Container:
        """Start a detached container under this cell's runtime (or an explicit one, e.g. runc for pairs)."""
        rt = runtime or self.runtime
        kwargs.setdefault("image", self.image)
        kwargs["labels"] = {**self.labels, **kwargs.get("labels", {})}
        cmd = command if command is None or isinstance(command, str) else list(command)
        self.evidence.command(f"docker run -d --runtime={rt} {_flags(kwargs)} "
                              f"{cmd if isinstance(cmd, str) else shlex.join(cmd or [])}")
        image = kwargs.pop("image")
        with refusals(f"docker run --runtime={rt}"):
            c = self.client.containers.create(image, cmd, runtime=rt, **kwargs)
            self._created(c)
            c.start()
        c.reload()
        return c

    def create(self, command: list[str] | str | None = None, *, runtime: str | None = None,
               **kwargs: Any) -> Container:
        rt = runtime or self.runtime
        image = kwargs.pop("image", self.image)
        kwargs["labels"] = {**self.labels, **kwargs.get("labels", {})}
        self.evidence.command(f"docker create --runtime={rt} {_flags(kwargs)} {command}")
        with refusals(f"docker create --runtime={rt}"):
            c = self.client.containers.create(image, command, runtime=rt, **kwargs)
        self._created(c)
        return c

    def _created(self, c: Container) -> None:
        self._containers.append(c)
        self._on_create(c.id)

    def start(self, c: Container) -> None:
        self.evidence.command(f"docker start {c.name}")
        with refusals("docker start"):
            c.start()

    def wait(self, c: Container, timeout: float = 60) -> int:
        self.evidence.command(f"docker wait {c.name}")
        with refusals("docker wait"):
            return int(c.wait(timeout=timeout)["StatusCode"])

    def run_to_exit(self, command: list[str] | str, timeout: float = 60, **kwargs: Any) -> ExecResult:
        """Run a container to completion and return its exit code and separated stdout/stderr."""
        c = self.run(command, **kwargs)
        code = self.wait(c, timeout)
        return ExecResult(code, self.logs(c, stderr=False), self.logs(c, stdout=False))

    def logs(self, c: Container, stdout: bool = True, stderr: bool = True) -> str:
        with refusals("docker logs"):
            return c.logs(stdout=stdout, stderr=stderr).decode(errors="replace")

    def exec(self, c: Container, command: list[str] | str, **kwargs: Any) -> ExecResult:
        cmd = ["sh", "-c", command] if isinstance(command, str) else command
        self.evidence.command(f"docker exec {_flags(kwargs)} {c.name} {shlex.join(cmd)}")
        with refusals("docker exec"):
            res = c.exec_run(cmd, demux=not kwargs.get("tty"), **kwargs)
        if kwargs.get("detach"):
            return ExecResult(0, "", "")
        if kwargs.get("tty"):
            out, err = res.output or b"", b""
        else:
            out, err = res.output if res.output else (b"", b"")
        return ExecResult(int(res.exit_code), (out or b"").decode(errors="replace"),
                          (err or b"").decode(errors="replace"))

    def sh(self, c: Container, script: str, **kwargs: Any) -> str:
        """stdout of a shell snippet in the container; a non-zero exit is a refusal of the operation."""
        r = self.exec(c, script, **kwargs)
        if r.code != 0:
            raise Refused(f"docker exec sh -c {script!r}: exit {r.code}: {r.stderr.strip()[:500]}")
        return r.stdout

    def inspect(self, c: Container) -> dict[str, Any]:
        with refusals("docker inspect"):
            return self.client.api.inspect_container(c.id)

    def cli(self, *args: str, timeout: float = 120, check: bool = True, input: bytes | str | None = None,
            binary: bool = False) -> subprocess.CompletedProcess[Any]:
        """The docker CLI, for the operations the SDK does not cover (checkpoint, update, warnings, -i stdin).
        Containers it creates must carry `--label` ctx.labels and be passed to adopt() for clean-up."""
        self.evidence.command("docker " + shlex.join(args))
        if isinstance(input, str) and binary:
            input = input.encode()
        try:
            proc = subprocess.run(["docker", "-H", self.docker_host, *args], capture_output=True,
                                  text=not binary, input=input, timeout=timeout)
        except subprocess.TimeoutExpired as e:
            raise TimedOut(f"docker {' '.join(args)}: no answer within {timeout}s") from e
        if check and proc.returncode != 0:
            err = proc.stderr.decode(errors="replace") if binary else proc.stderr
            raise Refused(f"docker {' '.join(args[:2])}: exit {proc.returncode}: {err.strip()[:800]}")
        return proc

    def label_flags(self) -> list[str]:
        """`--label k=v` for containers created through ctx.cli."""
        return [f for k, v in self.labels.items() for f in ("--label", f"{k}={v}")]

    def adopt(self, name_or_id: str) -> Container | None:
        """A container made outside ctx.run (e.g. `docker run` via ctx.cli): track it for clean-up."""
        try:
            c = self.client.containers.get(name_or_id)
        except docker.errors.NotFound:
            return None
        if all(c.id != known.id for known in self._containers):
            self._created(c)
        return c

    def volume(self, name: str | None = None) -> Any:
        """A labelled volume, removed after this oracle's containers."""
        name = name or f"vmp-{self.run_id[-6:]}-v{len(self._volumes)}"
        self.evidence.command(f"docker volume create {name}")
        with refusals("docker volume create"):
            v = self.client.volumes.create(name, labels=dict(self.labels))
        self._volumes.append(v)
        return v

    # --- networks ---------------------------------------------------------------------------------
    def network(self, name: str | None = None, *, internal: bool = True, **kwargs: Any) -> Network:
        """A user-defined network; internal by default, so nothing can leave the host's Docker bridges."""
        name = name or f"vmp-{self.run_id[-6:]}-{len(self._networks)}-{int(time.monotonic() * 1000) % 100000}"
        self.evidence.command(f"docker network create --internal={internal} {_flags(kwargs)} {name}")
        with refusals("docker network create"):
            n = self.client.networks.create(name, internal=internal, labels=dict(self.labels), **kwargs)
        self._networks.append(n)
        return n

    # --- inspection -------------------------------------------------------------------------------
    def inside(self, c: Container) -> testinfra.host.Host:
        """testinfra's view of a running container (through `docker exec`)."""
        return testinfra.get_host(f"docker://{c.id}")

    @property
    def host(self) -> testinfra.host.Host:
        return testinfra.get_host("local://")

    def disposable(self, *, default_runtime: str | None = None, env: dict[str, str] | None = None,
                   flags: list[str] | None = None) -> Ctx:
        """A fresh dockerd for host-impacting scenarios, torn down with this oracle; returns a Ctx bound to it."""
        from harness.daemon import DisposableDaemon

        daemon = DisposableDaemon(self.run_id, default_runtime=default_runtime, env=env, flags=flags,
                                  stack=self.stack)
        self.daemon_names.append(daemon.name)
        self.evidence.command(f"dockerd (disposable {daemon.name}) default-runtime={default_runtime} "
                              f"env={env or {}} flags={flags or []}")
        self.on_cleanup(daemon.stop)
        daemon.start()  # a daemon that does not come up is the suite's failure, not the runtime's
        child = Ctx(daemon.client, self.runtime, self.run_id, self.cell, self.image, self.evidence,
                    docker_host=daemon.host, on_create=self._on_create, stack=self.stack)
        child.daemon = daemon  # type: ignore[attr-defined]
        self.on_cleanup(child.cleanup)
        return child

    def on_cleanup(self, fn: Any) -> None:
        self._cleanups.append(fn)

    def cleanup(self) -> list[str]:
        """Remove what this oracle created; return what could not be removed (a leak, reported)."""
        problems: list[str] = []
        for fn in reversed(self._cleanups):
            try:
                fn()
            except Exception as e:
                problems.append(f"cleanup {getattr(fn, '__name__', fn)}: {e}")
        for c in self._containers:
            try:
                c.remove(force=True, v=True)
            except docker.errors.NotFound:
                pass
            except Exception as e:
                problems.append(f"container {c.name}: {e}")
        for n in self._networks:
            try:
                n.remove()
            except docker.errors.NotFound:
                pass
            except Exception as e:
                problems.append(f"network {n.name}: {e}")
        for v in self._volumes:
            try:
                v.remove(force=True)
            except docker.errors.NotFound:
                pass
            except Exception as e:
                problems.append(f"volume {v.name}: {e}")
        return problems
