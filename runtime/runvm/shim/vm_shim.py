"""The vm-shim: one per container, forked by `runvm create`, its pid is the container's pid for containerd.

It owns QEMU (its child, killed with it), the guest agent's channel, the container's stdio (the pipes or tty it
inherited), forwards signals, serves the CLI's requests on a control socket and routes exec-shims' streams, and
exits with the container process's exit code.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import signal
import sys
import termios
import time
import traceback
import tty
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runtime.agent import protocol
from runtime.runvm import cgroups, hooks, log, share
from runtime.runvm import spec as specmod
from runtime.runvm.errors import RunvmError
from runtime.runvm.net import tap as tapmod
from runtime.runvm.shim import console, forked
from runtime.runvm.shim.link import Link
from runtime.runvm.shim.quiet import quiet_python_streams
from runtime.runvm.shim.relay import FdToStream, StreamToFd
from runtime.runvm.state import CREATED, PAUSED, RUNNING, STOPPED, State, Store, now_rfc3339, proc_start_time
from runtime.runvm.sys import CLONE_NEWNET, private_mount_namespace, setns, unshare
from runtime.runvm.vm import accel as accelmod
from runtime.runvm.vm import qemu, qmp, template

TAP = "vmtap0"
INIT_STREAMS = {"stdin": 1, "stdout": 2, "stderr": 3}
FORWARDED_SIGNALS = [s for s in signal.Signals if s not in (signal.SIGKILL, signal.SIGSTOP, signal.SIGCHLD,
                                                             signal.SIGWINCH, signal.SIGPIPE, signal.SIGTTIN,
                                                             signal.SIGTTOU, signal.SIGTSTP, signal.SIGCONT)]
RESTORE_PING_TIMEOUT = 10.0
IMAGES_DIR = "ckpt"
"""Where checkpoint images appear inside the share (and so in the guest's /run/share)."""
STAND_IN_DIR = Path("/run/runvm-stand-ins")
"""Shared by all containers and readable by all: a stand-in runs with its guest process's uid."""
COLD_PING_TIMEOUT = 120.0


@dataclass
class Request:
    """What `runvm create` hands the shim it forks."""

    id: str
    state_dir: Path
    bundle: Path
    spec: dict[str, Any]
    rootfs: Path
    store: Store
    ready_fd: int
    console_socket: str | None = None
    boot: str = "auto"  # auto | cold
    restore_images: Path | None = None
    """Set by `runvm restore`: bring the processes back from these CRIU images instead of creating them."""
    extra: dict[str, Any] = field(default_factory=dict)


def main(req: Request) -> None:
    """Entry point in the forked child. Never returns."""
    code = 255
    quiet_python_streams(req.state_dir / "shim.log")
    try:
        os.setsid()
        code = asyncio.run(_with_pidfd_watcher(VmShim(req).run()))
    except BaseException as e:
        VmShim.report_failure(req, e)
    finally:
        os._exit(code)


async def _with_pidfd_watcher(coro: Any) -> Any:
    """asyncio's default child watcher is a thread per process; the shim must stay single-threaded (it forks)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        watcher = asyncio.PidfdChildWatcher()
        watcher.attach_loop(asyncio.get_running_loop())
        asyncio.set_child_watcher(watcher)
    return await coro


class VmShim:
    def __init__(self, req: Request) -> None:
        self.req = req
        self.d = req.state_dir
        self.s = req.store.sock_dir(req.id)
        self.spec = req.spec
        self.linux = req.spec.get("linux") or {}
        self.proc_spec = req.spec["process"]
        self.tty = bool(self.proc_spec.get("terminal"))
        self.qemu: Any = None
        self.qmp: Any = None
        self.agent: Link | None = None
        self.state: State | None = None
        self.routes: dict[int, Link] = {}
        self.exec_owner: dict[str, Link] = {}
        self.next_stream = 4
        self.outputs: dict[int, StreamToFd] = {}
        self.stdin_relay: FdToStream | None = None
        self.exit_future: asyncio.Future[int] | None = None
        self.ready_sent = False
        self.own_netns = False
        self.nics: dict[str, dict[str, Any]] = {}
        self.tty_slave: int | None = None
        self.oom_killed = False
        self.dns_server: str | None = None
        self.stand_ins: Any = None
        self.max_vcpus = qemu.Size().max_vcpus
        self.cpuset_pinned = bool(((self.linux.get("resources") or {}).get("cpu") or {}).get("cpus"))

    # ---- reporting to `runvm create` -------------------------------------------------------------
    def _ready(self, message: str) -> None:
        if not self.ready_sent:
            self.ready_sent = True
            with contextlib.suppress(OSError):
                os.write(self.req.ready_fd, message.encode())
                os.close(self.req.ready_fd)

    @staticmethod
    def report_failure(req: Request, e: BaseException) -> None:
        msg = str(e) if isinstance(e, RunvmError) else f"{e.__class__.__name__}: {e}"
        if not isinstance(e, RunvmError):
            log.write("debug", "shim failure", trace="".join(traceback.format_exception(e)))
        with contextlib.suppress(OSError):
            os.write(req.ready_fd, ("error " + msg).encode())

    # ---- set-up -----------------------------------------------------------------------------------
    def _namespaces(self) -> None:
        has_ns, path = specmod.network_namespace(self.spec)
        self.orig_net = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        self.orig_mnt = os.open("/proc/self/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
        if has_ns and path:
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except OSError as e:
                raise RunvmError(f"network namespace {path}: {e.strerror}") from e
            setns(fd, CLONE_NEWNET)
            os.close(fd)
        elif has_ns:
            unshare(CLONE_NEWNET)
            self.own_netns = True
        private_mount_namespace()

    def _in_host_namespaces(self) -> None:
        """preexec for hooks: they run where runc would run them, not in our netns or mount namespace."""
        setns(self.orig_mnt, 0)
        setns(self.orig_net, 0)

    def _vm_config(self, accel: str, tap_fd: int | None) -> tuple[qemu.VMConfig, str]:
        from runtime.runvm.vm import guest

        art = guest.artifacts()
        size = qemu.Size()
        return qemu.VMConfig(kernel=art.kernel, initrd=art.initrd, osimage=art.osimage,
                             cmdline=guest.cmdline(), share_dir=self.d / "share",
                             agent_sock=self.s / "agent.sock", qmp_sock=self.s / "qmp.sock", size=size,
                             accel=accel, tap_fd=tap_fd, console_log=self.d / "console.log"), art.key

    async def _start_vm(self, tap_fd: int | None) -> None:
        """Restore from the template when there is a usable one; otherwise boot cold and say why."""
        accel, accel_why = accelmod.choose()
        base, art_key = self._vm_config(accel, tap_fd)
        key = template.key_for(art_key, base.size, accel, base.cmdline)
        tpl, why = template.find(key) if self.req.boot != "cold" else (None, "cold boot requested (--boot=cold)")
        self.boot_info = {"accel": accel, "accel_why": accel_why, "template": key}
        if tpl is not None:
            from runtime.runvm.vm import stub_kernel

            kernel, initrd = stub_kernel.ensure(template.TEMPLATES)
            cfg = qemu.VMConfig(**{**base.__dict__, "ram_file": tpl.memory, "ram_shared": False,
                                   "incoming": True, "console_log": None, "kernel": kernel, "initrd": initrd})
            try:
                await self._launch(cfg)
                log.trace("qemu launched")
                await qmp.restore(self.qmp, tpl.state)
                log.trace("restored")
                await self._connect_agent(RESTORE_PING_TIMEOUT)
                self.boot_info.update(boot="templated", reason="restored from template " + key)
                return
            except Exception as e:
                why = f"restore from template {key} failed ({e}); template discarded"
                log.warning(why)
                template.discard(key, why)
                await self._stop_vm()
        log.info(f"runvm: cold boot: {why}")
        if self.req.boot != "cold":
            self._build_template_later()
        await self._launch(base)
        await self._connect_agent(COLD_PING_TIMEOUT)
        self.boot_info.update(boot="cold", reason=why)

    def _build_template_later(self) -> None:
        if os.environ.get("RUNVM_NO_TEMPLATE_BUILD"):
            return
        exe = sys.executable
        with contextlib.suppress(OSError):
            template.build_in_background([exe, "-m", "runtime.runvm.cli", "template", "build", "--quiet"])

    async def _launch(self, cfg: qemu.VMConfig) -> None:
        self.qemu = qemu.launch(cfg, self.d / "qemu.log")
        try:
            self.qmp = await qmp.connect(cfg.qmp_sock, alive=lambda: self.qemu.poll() is None)
        except RunvmError:
            raise RunvmError(f"QEMU did not start: {self._qemu_log_tail()}") from None

    def _qemu_log_tail(self) -> str:
        try:
            return " ".join((self.d / "qemu.log").read_text(errors="replace").split()[-60:])
        except OSError:
            return "(no log)"

    async def _stop_vm(self) -> None:
        if self.qmp is not None:
            with contextlib.suppress(Exception):
                await self.qmp.disconnect()
            self.qmp = None
        if self.agent is not None:
            self.agent.close()
            self.agent = None
        if self.qemu is not None:
            qemu.kill(self.qemu)

    async def _connect_agent(self, timeout: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            if self.qemu.poll() is not None:
                raise RunvmError(f"QEMU exited with {self.qemu.returncode}: {self._qemu_log_tail()}")
            link = None
            try:
                reader, writer = await asyncio.open_unix_connection(str(self.s / "agent.sock"))
                link = Link(reader, writer, self._on_agent_frame, name="guest agent")
                await link.request({"op": "ping"}, timeout=max(0.5, min(5.0, deadline - loop.time())))
                self.agent = link
                break
            except (OSError, RunvmError):
                if link is not None:
                    link.close()
                    link.task.cancel()
                if loop.time() > deadline:
                    raise RunvmError(f"the guest agent did not answer within {timeout}s") from None
                await asyncio.sleep(0.05)
        await self.agent.request({"op": "prepare", "time_ns": time.time_ns(),
                                  "seed": base64.b64encode(os.urandom(64)).decode()})
        if timeout == COLD_PING_TIMEOUT:  # a cold guest has not had the template's warm-up
            await self.agent.request({"op": "warm", "cgroup_layout": cgroups.layout()}, timeout=120)

    async def _network(self, hooks_task: asyncio.Task[None]) -> list[dict[str, Any]]:
        """Once Docker's hook has put the veth in our netns: join it to the tap; the guest NIC gets its config.
        The plumbing child is forked (and imports pyroute2) right away, and waits for the hook to finish."""
        if not self.own_netns:
            await hooks_task
            return []
        go_r, go_w = os.pipe()
        plumbing = asyncio.get_running_loop().create_task(forked.call(_plumb_first_veth, go_r, TAP, keep=(go_r,)))
        try:
            await hooks_task
        finally:
            with contextlib.suppress(OSError):
                os.write(go_w, b"g")
            os.close(go_w)
        try:
            first = await plumbing
        finally:
            os.close(go_r)
        if first is None:
            return []
        from runtime.runvm.shim.netconnect import config_of

        nic = {"guest_mac": qemu.TEMPLATE_MAC, "mac": first["mac"], "mtu": first["mtu"], "name": first["name"],
               "addresses": first["addresses"], "routes": first["routes"]}
        # from now on the guest NIC carries the veth's MAC: that is how later changes find it
        self.nics[first["name"]] = {**nic, "guest_mac": first["mac"], "device": "nic0", "config": config_of(first)}
        return [nic]

    def _embedded_dns(self) -> str | None:
        """Docker's embedded DNS address when the container's resolv.conf points at it (user networks)."""
        for m in self.spec.get("mounts") or []:
            if m.get("destination") == "/etc/resolv.conf":
                try:
                    text = Path(m.get("source", "")).read_text()
                except OSError:
                    return None
                for line in text.splitlines():
                    parts = line.split()
                    if len(parts) >= 2 and parts[0] == "nameserver" and parts[1].startswith("127."):
                        return parts[1]
        return None

    def _shares(self) -> tuple[list[dict[str, Any]], dict[str, str]]:
        sdir = self.d / "share"
        share.prepare(sdir)
        return share.populate(sdir, self.req.rootfs, self.spec.get("mounts") or [])

    async def setup(self) -> None:
        log.trace("setup begin")
        cgroup_path = cgroups.path_of(self.spec, self.req.id)
        cgroups.place(cgroup_path, os.getpid(), self.linux.get("resources") or {})
        self._namespaces()
        log.trace("namespaces")
        tap_fd = tapmod.open_tap(TAP) if self.own_netns else None
        (self.d / "share").mkdir(exist_ok=True)
        loop = asyncio.get_running_loop()
        oci_state = {"ociVersion": self.spec.get("ociVersion", "1.0.2"), "id": self.req.id, "status": "created",
                     "pid": os.getpid(), "bundle": str(self.req.bundle),
                     "annotations": self.spec.get("annotations") or {}}
        hook_list = hooks.of(self.spec, "prestart", "createRuntime")
        hooks_task = loop.create_task(hooks.run_async(hook_list, oci_state, self._in_host_namespaces))
        network_task = loop.create_task(self._network(hooks_task))
        try:
            vm_task = loop.create_task(self._start_vm(tap_fd))
            mounts, shares = self._shares()
            log.trace("shares")
            await vm_task
            log.trace("vm ready")
        except BaseException:
            network_task.cancel()
            raise
        finally:
            if tap_fd is not None:
                os.close(tap_fd)  # QEMU has its own copy
        from runtime.runvm.shim import resize

        for w in await resize.grow(self, self.linux.get("resources") or {}, self.max_vcpus):
            log.warning(w)
        streams = self._stdio_setup()
        spec_for_guest = {**self.spec, "mounts": mounts}
        self.dns_server = self._embedded_dns()
        restoring = self.req.restore_images is not None
        if restoring:
            self._bind_images(self.req.restore_images)  # type: ignore[arg-type]
        # the guest builds the container while the host finishes the network; the NIC is configured before
        # create returns, so the process (held until start) never runs without it
        create = loop.create_task(self.agent.request({
            "op": "restore" if restoring else "create", "images": IMAGES_DIR, "id": self.req.id,
            "spec": spec_for_guest, "rootfs": "rootfs", "shares": shares,
            "cgroup_layout": cgroups.layout(), "cgroup_path": cgroup_path, "streams": streams, "tty": self.tty,
            "dns_relay": self.dns_server if self.own_netns else None,
        }, timeout=300 if restoring else 120))
        try:
            nics = await network_task
            log.trace("network")
        except BaseException:
            create.cancel()
            raise
        reply = await create
        log.trace(f"agent create {reply.get('timings')}")
        for nic in nics:
            await self.agent.request({"op": "net_add", "nic": nic}, timeout=30)
        log.trace("nics")
        for w in reply.get("warnings") or []:
            log.warning(w)
        if restoring:
            self._unbind_images()
        self.state = State(
            id=self.req.id, bundle=str(self.req.bundle), rootfs=str(self.req.rootfs),
            status=RUNNING if restoring else CREATED,
            pid=os.getpid(), pid_start=proc_start_time(os.getpid()) or 0, created=now_rfc3339(),
            annotations=self.spec.get("annotations") or {}, accel=self.boot_info["accel"],
            boot=self.boot_info["boot"], boot_reason=self.boot_info["reason"], qemu_pid=self.qemu.pid,
            init_guest_pid=int(reply.get("pid") or 0),
            extra={"template": self.boot_info.get("template"), "accel_why": self.boot_info.get("accel_why"),
                   "cgroup_path": cgroup_path},
        )
        self.req.store.save(self.state)

    def _bind_images(self, images: Path) -> None:
        """CRIU images go through the 9p share: the host directory is bound into it for the duration."""
        from runtime.runvm.sys import MS_BIND, mount

        images.mkdir(parents=True, exist_ok=True)
        target = self.d / "share" / IMAGES_DIR
        target.mkdir(exist_ok=True)
        mount(str(images), str(target), None, MS_BIND)

    def _unbind_images(self) -> None:
        from runtime.runvm.sys import umount

        with contextlib.suppress(OSError):
            umount(str(self.d / "share" / IMAGES_DIR))

    async def op_checkpoint(self, req: dict[str, Any], link: Link) -> dict[str, Any]:
        if self._status() not in (RUNNING, PAUSED):
            raise RunvmError(f"cannot checkpoint a container that is {self._status()}")
        images = Path(req["image_path"])
        self._bind_images(images)
        try:
            reply = await self.agent.request({"op": "checkpoint", "images": IMAGES_DIR,
                                              "leave_running": bool(req.get("leave_running"))}, timeout=300)
        finally:
            self._unbind_images()
        (images / "runvm.json").write_text(json.dumps({"tty": self.tty, "info": reply.get("info") or {}}))
        return {}

    def _stdio_setup(self) -> dict[str, int]:
        """Host ends of the init process's stdio: fds 0/1/2 as containerd gave them, or a pty for -t."""
        send = self._to_agent
        if self.tty:
            if not self.req.console_socket:
                raise RunvmError("a terminal was requested but no --console-socket was given")
            master, slave = os.openpty()
            tty.setraw(slave, termios.TCSANOW)
            console.send_master(self.req.console_socket, master)
            os.close(master)
            fcntl_ctty(slave)
            self.tty_slave = slave
            out = StreamToFd(os.dup(slave), INIT_STREAMS["stdout"], send)
            self.outputs = {INIT_STREAMS["stdout"]: out}
            self.stdin_relay = FdToStream(os.dup(slave), INIT_STREAMS["stdin"], send)
            for fd in (0, 1, 2):
                with contextlib.suppress(OSError):
                    os.close(fd)
        else:
            self.outputs = {INIT_STREAMS["stdout"]: StreamToFd(1, INIT_STREAMS["stdout"], send),
                            INIT_STREAMS["stderr"]: StreamToFd(2, INIT_STREAMS["stderr"], send)}
            self.stdin_relay = FdToStream(0, INIT_STREAMS["stdin"], send)
        return dict(INIT_STREAMS)

    # ---- frames -----------------------------------------------------------------------------------
    def _to_agent(self, data: bytes) -> None:
        if self.agent is not None:
            self.agent.send(data)

    def _on_agent_frame(self, kind: int, ident: int, payload: bytes) -> None:
        if kind == protocol.REQUEST:
            asyncio.get_running_loop().create_task(self._agent_request(ident, json.loads(payload)))
        elif kind == protocol.EVENT:
            self._on_event(json.loads(payload))
        elif kind in (protocol.DATA, protocol.EOF):
            out = self.outputs.get(ident)
            if out is not None:
                out.data(payload) if kind == protocol.DATA else out.end()
            elif ident in self.routes:
                self.routes[ident].send(protocol.frame(kind, ident, payload))
        elif kind == protocol.CREDIT:
            if self.stdin_relay is not None and ident == INIT_STREAMS["stdin"]:
                self.stdin_relay.grant(protocol.CREDIT_FMT.unpack(payload)[0])
            elif ident in self.routes:
                self.routes[ident].send(protocol.frame(kind, ident, payload))

    def _on_event(self, ev: dict[str, Any]) -> None:
        kind = ev.get("event")
        if kind == "exit":
            key = ev.get("process")
            code = protocol.exit_code(ev.get("status") or {})
            if key == "init":
                if self.exit_future is not None and not self.exit_future.done():
                    self.exit_future.set_result(code)
            else:
                owner = self.exec_owner.pop(key, None)
                if owner is not None:
                    owner.send(protocol.message(protocol.EVENT, 0, ev))
        elif kind == "oom":
            self.oom_killed = True
            log.warning("container OOM-killed a process in the guest")
            asyncio.get_running_loop().create_task(self._relay_oom())

    async def _agent_request(self, ident: int, req: dict[str, Any]) -> None:
        """Requests from the guest: only DNS queries for Docker's embedded server, asked from our netns."""
        try:
            if req.get("op") != "dns":
                raise RunvmError(f"unknown guest request {req.get('op')!r}")
            from runtime.runvm.net import dns

            answer = await dns.ask(base64.b64decode(req["data"]), self.dns_server)
            reply = {"ok": True, "data": base64.b64encode(answer).decode()}
        except Exception as e:
            reply = {"ok": False, "error": str(e)}
        if self.agent is not None:
            self.agent.respond(ident, reply)

    async def _relay_oom(self) -> None:
        from runtime.runvm import oom

        with contextlib.suppress(Exception):
            await forked.call(oom.signal_host_cgroup, self.state.extra["cgroup_path"] if self.state else "")

    # ---- control socket ---------------------------------------------------------------------------
    async def _serve_control(self) -> asyncio.AbstractServer:
        path = self.s / "shim.sock"
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        return await asyncio.start_unix_server(self._client, path=str(path))

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        link_ref: list[Link] = []

        def on_frame(kind: int, ident: int, payload: bytes) -> None:
            link = link_ref[0]
            if kind == protocol.REQUEST:
                asyncio.get_running_loop().create_task(self._control_request(link, ident, json.loads(payload)))
            elif kind in (protocol.DATA, protocol.EOF, protocol.CREDIT) and self.routes.get(ident) is link:
                self._to_agent(protocol.frame(kind, ident, payload))

        link = Link(reader, writer, on_frame, name="control client")
        link_ref.append(link)
        await link.closed
        for sid in [s for s, owner in self.routes.items() if owner is link]:
            del self.routes[sid]

    async def _control_request(self, link: Link, ident: int, req: dict[str, Any]) -> None:
        try:
            fn = getattr(self, "op_" + str(req.get("op", "")).replace("-", "_"), None)
            if fn is None:
                raise RunvmError(f"unknown request {req.get('op')!r}")
            result = await fn(req, link)
            link.respond(ident, {"ok": True, **(result or {})})
        except RunvmError as e:
            link.respond(ident, {"ok": False, "error": str(e)})
        except Exception as e:
            log.error(f"shim request {req.get('op')} failed: {traceback.format_exc()}")
            link.respond(ident, {"ok": False, "error": f"{e.__class__.__name__}: {e}"})

    def _status(self) -> str:
        return self.state.status if self.state else CREATED

    def _set_status(self, status: str, **extra: Any) -> None:
        assert self.state is not None
        self.state.status = status
        for k, v in extra.items():
            setattr(self.state, k, v)
        self.req.store.save(self.state)

    async def op_start(self, req: dict[str, Any], link: Link) -> dict[str, Any]:
        if self._status() != CREATED:
            raise RunvmError(f"cannot start a container that is {self._status()}")
        log.trace("start req")
        await self.agent.request({"op": "start"})
        log.trace("started")
        self._set_status(RUNNING)
        if self.stdin_relay is not None:
            self.stdin_relay.start()
        return {}

    async def op_kill(self, req: dict[str, Any], link: Link) -> dict[str, Any]:
        if self._status() == STOPPED:
            raise RunvmError("container not running")
        sig = int(req["signal"])
        if self._status() == PAUSED and sig == signal.SIGKILL:
            await self.agent.request({"op": "kill", "signal": sig, "all": True})
            await self.agent.request({"op": "resume"})
            return {}
        await self.agent.request({"op": "kill", "signal": sig, "all": bool(req.get("all")),
                                  "process": req.get("process")})
        return {}

    async def op_pause(self, req: dict[str, Any], link: Link) -> dict[str, Any]:
        if self._status() != RUNNING:
            raise RunvmError(f"container not running ({self._status()})")
        await self.agent.request({"op": "pause"})
        self._set_status(PAUSED)
        return {}

    async def op_resume(self, req: dict[str, Any], link: Link) -> dict[str, Any]:
        if self._status() != PAUSED:
            raise RunvmError("container not paused")
        await self.agent.request({"op": "resume"})
        self._set_status(RUNNING)
        return {}

    async def op_ps(self, req: dict[str, Any], link: Link) -> dict[str, Any]:
        from runtime.runvm.shim.top import StandIns

        reply = await self.agent.request({"op": "ps"})
        processes = reply.get("processes") or []
        if self.stand_ins is None:
            self.stand_ins = StandIns(STAND_IN_DIR)
        return {"processes": processes, "host_pids": self.stand_ins.sync(processes)}

    async def op_stats(self, req: dict[str, Any], link: Link) -> dict[str, Any]:
        return {"stats": (await self.agent.request({"op": "stats"})).get("stats")}

    async def op_update(self, req: dict[str, Any], link: Link) -> dict[str, Any]:
        from runtime.runvm.shim import resize

        res = req.get("resources") or {}
        if (res.get("cpu") or {}).get("cpus"):
            self.cpuset_pinned = True
        warnings = await resize.grow(self, res, self.max_vcpus)
        reply = await self.agent.request({"op": "update", "resources": res}, timeout=60)
        return {"warnings": warnings + (reply.get("warnings") or [])}

    async def op_exec(self, req: dict[str, Any], link: Link) -> dict[str, Any]:
        if self._status() != RUNNING:
            raise RunvmError(f"cannot exec in a {self._status()} container")
        base = self.next_stream
        self.next_stream += 3
        streams = {"stdin": base, "stdout": base + 1, "stderr": base + 2}
        for sid in streams.values():
            self.routes[sid] = link
        self.exec_owner[req["id"]] = link
        try:
            reply = await self.agent.request({"op": "exec", "id": req["id"], "process": req["process"],
                                              "streams": streams})
        except RunvmError:
            for sid in streams.values():
                self.routes.pop(sid, None)
            self.exec_owner.pop(req["id"], None)
            raise
        return {"pid": reply.get("pid"), "streams": streams}

    async def op_exec_kill(self, req: dict[str, Any], link: Link) -> dict[str, Any]:
        with contextlib.suppress(RunvmError):
            await self.agent.request({"op": "kill", "signal": int(req["signal"]), "process": req["id"]})
        return {}

    async def op_resize(self, req: dict[str, Any], link: Link) -> dict[str, Any]:
        await self.agent.request({"op": "resize", "process": req.get("process"), "rows": req["rows"],
                                  "cols": req["cols"]})
        return {}

    async def op_state(self, req: dict[str, Any], link: Link) -> dict[str, Any]:
        return {"status": self._status(), "boot": self.boot_info}

    # ---- running -----------------------------------------------------------------------------------
    def _signals(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in FORWARDED_SIGNALS:
            with contextlib.suppress(OSError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, self._forward_signal, int(sig))
        if self.tty:
            loop.add_signal_handler(signal.SIGWINCH, self._winch)

    def _forward_signal(self, sig: int) -> None:
        if self.agent is not None and self._status() in (RUNNING, PAUSED, CREATED):
            asyncio.get_running_loop().create_task(self._quiet(self.agent.request({"op": "kill", "signal": sig})))

    def _winch(self) -> None:
        if self.tty_slave is None or self.agent is None:
            return
        rows, cols = console.window_size(self.tty_slave)
        asyncio.get_running_loop().create_task(self._quiet(self.agent.request(
            {"op": "resize", "process": "init", "rows": rows, "cols": cols})))

    @staticmethod
    async def _quiet(coro: Any) -> None:
        with contextlib.suppress(Exception):
            await coro

    def _watch_qemu(self) -> None:
        fd = os.pidfd_open(self.qemu.pid)
        loop = asyncio.get_running_loop()

        def gone() -> None:
            loop.remove_reader(fd)
            os.close(fd)
            if self.exit_future is not None and not self.exit_future.done():
                rc = self.qemu.wait()
                log.error(f"the container's VM stopped unexpectedly (QEMU exit status {rc})")
                self.exit_future.set_result(128 + signal.SIGKILL if rc == -signal.SIGKILL else 255)

        loop.add_reader(fd, gone)

    async def _watch_network(self) -> None:
        """`docker network connect/disconnect` while running: NICs hot-plugged and removed (netconnect.py)."""
        if not self.own_netns:
            return
        from runtime.runvm.shim import netconnect

        await netconnect.watch(self)

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        self.exit_future = loop.create_future()
        try:
            await self.setup()
            server = await self._serve_control()
        except BaseException as e:
            await self._stop_vm()
            self.report_failure(self.req, e)
            return 255
        self._signals()
        self._watch_qemu()
        if self.req.restore_images is not None and self.stdin_relay is not None:
            self.stdin_relay.start()
        net_task = loop.create_task(self._watch_network())
        self._ready("ok")
        _release_setup_memory()
        code = await self.exit_future
        log.trace(f"exit {code}")
        net_task.cancel()
        server.close()
        await self._drain_outputs()
        log.trace("drained")
        if self.stand_ins is not None:
            self.stand_ins.stop_all()
        self._set_status(STOPPED, exit_code=code, oom_killed=self.oom_killed)
        await self._stop_vm()
        log.trace("vm stopped")
        return code

    async def _drain_outputs(self, timeout: float = 5.0) -> None:
        if self.stdin_relay is not None:
            self.stdin_relay.stop()
        waits = [o.flushed for o in self.outputs.values()]
        if waits:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*waits), timeout)


def _release_setup_memory() -> None:
    """The set-up's garbage (spec copies, QMP and JSON buffers) back to the system: the shim then idles for the
    container's whole life, and its footprint is per-container host memory."""
    import ctypes
    import gc

    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def fcntl_ctty(fd: int) -> None:
    import fcntl

    with contextlib.suppress(OSError):
        fcntl.ioctl(fd, termios.TIOCSCTTY, 0)


def _plumb_first_veth(go_fd: int, tap: str) -> dict[str, Any] | None:
    """In the forked child: import pyroute2 while the hook runs, then wire the first veth to the tap."""
    from pyroute2 import IPRoute

    from runtime.runvm.net import plumb

    os.read(go_fd, 1)
    with IPRoute() as ipr:
        found = plumb.veths(ipr)
    if not found:
        return None
    plumb.wire(tap, found[0])
    return found[0]


def _list_veths() -> dict[str, Any]:
    from pyroute2 import IPRoute

    from runtime.runvm.net import plumb

    with IPRoute() as ipr:
        return {"veths": plumb.veths(ipr)}


def _wire(tap: str, name: str) -> bool:
    from pyroute2 import IPRoute

    from runtime.runvm.net import plumb

    with IPRoute() as ipr:
        veth = next(v for v in plumb.veths(ipr) if v["name"] == name)
    plumb.wire(tap, veth)
    return True

