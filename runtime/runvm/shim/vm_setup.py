"""The vm-shim's first half: forked by `runvm create` (or `restore`), it sets the container up and then becomes
the resident shim (vm_shim.py) by exec, keeping its pid: the container's pid for containerd.

Set-up needs what the resident never will: QMP (qemu.qmp), the template logic, the KVM probe, hooks. Throwing
them away with the interpreter keeps the part that lives as long as the container small.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import socket
import sys
import termios
import time
import traceback
import tty
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from runtime.runvm import cgroups, hooks, limits, log, share
from runtime.runvm import spec as specmod
from runtime.runvm.errors import RunvmError
from runtime.runvm.net import tap as tapmod
from runtime.runvm.shim import console, forked, images, resize
from runtime.runvm.shim.constants import IMAGES_DIR, INIT_STREAMS, TAP
from runtime.runvm.shim.link import Link
from runtime.runvm.shim.quiet import quiet_python_streams
from runtime.runvm.state import CREATED, RUNNING, State, Store, now_rfc3339, proc_start_time
from runtime.runvm.sys import CLONE_NEWNET, CLONE_NEWNS, private_mount_namespace, setns, unshare
from runtime.runvm.vm import plan as planmod
from runtime.runvm.vm import pool, qemu, qmp, template

RESTORE_PING_TIMEOUT = 10.0
COLD_PING_TIMEOUT = 120.0
REPO = str(Path(__file__).resolve().parents[3])


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
    tb_mib: int | None = None
    """--tb-mib: QEMU's translation cache under TCG; None keeps VMConfig's default."""
    pool: bool = False
    """--pool: take a spare VM restored ahead of time, and start its replacement."""
    restore_images: Path | None = None
    """Set by `runvm restore`: bring the processes back from these CRIU images instead of creating them."""
    extra: dict[str, Any] = field(default_factory=dict)


def main(req: Request) -> None:
    """Entry point in the forked child. Never returns: it execs the resident shim, or exits on failure."""
    quiet_python_streams(req.state_dir / "shim.log")
    try:
        os.setsid()
        handover = asyncio.run(_with_pidfd_watcher(VmSetup(req).run()))
    except BaseException as e:
        VmSetup.report_failure(req, e)
        os._exit(255)
    become_resident(handover)


async def _with_pidfd_watcher(coro: Any) -> Any:
    """asyncio's default child watcher is a thread per process; the shim must stay single-threaded (it forks)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        watcher = asyncio.PidfdChildWatcher()
        watcher.attach_loop(asyncio.get_running_loop())
        asyncio.set_child_watcher(watcher)
    return await coro


class VmSetup:
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
        self.own_netns = False
        self.nics: dict[str, dict[str, Any]] = {}
        self.tty_slave: int | None = None
        self.dns_server: str | None = None
        self.early_frames: list[tuple[int, int, bytes]] = []
        self.max_vcpus = qemu.Size().max_vcpus
        self.cpuset_pinned = bool(((self.linux.get("resources") or {}).get("cpu") or {}).get("cpus"))
        self.boot_info: dict[str, Any] = {}
        self.ready_sent = False
        self.state: State | None = None
        self.cgroup_path = ""
        self.size = qemu.Size()
        self.plan = planmod.make(self.d / "share", self.s, None, req.tb_mib, self.d / "console.log")
        self.claimed: pool.Claimed | None = None
        self.pool_slot: str | None = None
        self.trees: list[int] | None = None
        self.vm_mnt = -1
        self.tap_replaced = False
        self.share_dir = self.d / "share"
        self.plugged_mib = 0

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
        if self.claimed is None:
            private_mount_namespace()
            return
        # A pooled VM's 9p export is a path in its own mount namespace, where the rootfs must go; what the
        # container's daemon sees (its rootfs, bind sources) is taken from ours before we leave.
        self.trees = share.clone_sources(self.req.rootfs, self.spec.get("mounts") or [])
        setns(self.vm_mnt, CLONE_NEWNS)

    def _read_daemon_file(self, path: str) -> str:
        """A file as the container's daemon sees it (for a pooled VM we live in the VM's mount namespace)."""
        if self.claimed is None:
            return Path(path).read_text()
        setns(self.orig_mnt, CLONE_NEWNS)
        try:
            return Path(path).read_text()
        finally:
            setns(self.vm_mnt, CLONE_NEWNS)

    def _in_host_namespaces(self) -> None:
        """preexec for hooks: they run where runc would run them, not in our netns or mount namespace."""
        setns(self.orig_mnt, 0)
        setns(self.orig_net, 0)

    def _claim_spare(self) -> None:
        """--pool: a spare VM for this template and cache size, if one is ready (checked again by pid age)."""
        if not self.req.pool or self.req.boot == "cold" or self.req.restore_images is not None:
            return
        got = pool.claim(self.plan.pool_key, os.getpid())
        if got is None:
            log.trace("no spare")
            return
        try:
            vm_mnt = os.open(f"/proc/{got.qemu_pid}/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            vm_mnt = None
        if vm_mnt is None or proc_start_time(got.qemu_pid) != got.qemu_start:  # gone, or its pid reused
            if vm_mnt is not None:
                os.close(vm_mnt)
            got.agent.close()
            pool.write_info(got.slot, claimed_by=None)
            return
        self.vm_mnt = vm_mnt
        self.claimed = got
        self.pool_slot = str(got.slot)  # ours from now on, even if the VM in it fails: `delete` removes it
        self.share_dir = got.slot / "share"
        pool.write_info(got.slot, container=self.req.id)
        log.trace("spare claimed")

    async def _adopt(self) -> None:
        """Take over the claimed spare: QMP, the held agent channel (fresh randomness and clock), its cgroup."""
        c = self.claimed
        assert c is not None
        self.qemu = qemu.Adopted(c.qemu_pid)
        cgroups.place(self.cgroup_path, c.qemu_pid, self.linux.get("resources") or {})
        reader, writer = await asyncio.open_unix_connection(sock=c.agent)
        if c.unread:
            reader.feed_data(c.unread)
        link = Link(reader, writer, self._early_frame, name="guest agent")
        try:
            await link.request({"op": "prepare", "time_ns": time.time_ns(),
                                "seed": base64.b64encode(os.urandom(64)).decode()}, timeout=5.0)
        except BaseException:
            link.close()
            raise
        self.agent = link

    async def _start_vm(self, tap_fd: int | None) -> None:
        """A claimed spare; else a restore from the template when there is a usable one; else a cold boot, and
        why."""
        p = self.plan
        key = p.key
        self.boot_info = {"accel": p.accel, "accel_why": p.accel_why, "template": key}
        if self.claimed is not None:
            try:
                await self._adopt()
                spare = self.claimed.slot.name
                self.boot_info.update(boot="templated",
                                      reason=f"restored from template {key} ahead of time (pool spare {spare})")
                return
            except Exception as e:
                log.warning(f"pool spare {self.claimed.slot.name} unusable ({e}); restoring a VM instead")
                await self._stop_vm()  # its tap goes with it
                self.claimed = None
                self.tap_replaced = True  # the veth may already be wired to the old tap: setup wires it again
                if self.own_netns:
                    own_tap = tapmod.open_tap(TAP)
                    try:
                        await self._start_vm(own_tap)
                    finally:
                        os.close(own_tap)
                    return
        base = replace(p.base, tap_fd=tap_fd, share_dir=self.share_dir)
        tpl, why = template.find(key) if self.req.boot != "cold" else (None, "cold boot requested (--boot=cold)")
        if tpl is not None:
            cfg = p.restored(tpl)
            cfg = replace(cfg, tap_fd=tap_fd, share_dir=self.share_dir)
            try:
                await self._launch(cfg)
                log.trace("qemu launched")
                await qmp.restore(self.qmp, tpl.state)
                log.trace("restored")
                await self._connect_agent(RESTORE_PING_TIMEOUT)
                self.boot_info.update(boot="templated", reason="restored from template " + key)
                template.mark_used(tpl)
                return
            except Exception as e:
                why = f"restore from template {key} failed ({e}); template discarded"
                log.warning(why)
                template.discard(key)
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
                link = Link(reader, writer, self._early_frame, name="guest agent")
                # the first request doubles as the ping: fresh randomness and the host's clock
                await link.request({"op": "prepare", "time_ns": time.time_ns(),
                                    "seed": base64.b64encode(os.urandom(64)).decode()},
                                   timeout=max(0.5, min(5.0, deadline - loop.time())))
                self.agent = link
                break
            except (OSError, RunvmError):
                if link is not None:
                    link.close()
                    link.task.cancel()
                if loop.time() > deadline:
                    raise RunvmError(f"the guest agent did not answer within {timeout}s") from None
                await asyncio.sleep(0.05)
        if timeout == COLD_PING_TIMEOUT:  # a cold guest has not had the template's warm-up
            await self.agent.request({"op": "warm", "cgroup_layout": cgroups.layout()}, timeout=120)

    async def _network(self, hooks_task: asyncio.Task[None]) -> list[dict[str, Any]]:
        """Once Docker's hook has put the veth in our netns: join it to the tap; the guest NIC gets its config.
        The plumbing child is forked (and imports pyroute2) right away, and waits for the hook to finish."""
        if not self.own_netns:
            await hooks_task
            return []
        go_r, go_w = os.pipe()
        tap_ns = f"/proc/{self.claimed.qemu_pid}/ns/net" if self.claimed else None
        plumbing = asyncio.get_running_loop().create_task(
            forked.call(_plumb_first_veth, go_r, TAP, tap_ns, keep=(go_r,)))
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
               "addresses": first["addresses"], "routes": first["routes"], "sysctls": _netns_sysctls()}
        # from now on the guest NIC carries the veth's MAC: that is how later changes find it
        self.nics[first["name"]] = {**nic, "guest_mac": first["mac"], "device": "nic0", "config": config_of(first)}
        return [nic]

    def _embedded_dns(self) -> str | None:
        """Docker's embedded DNS address when the container's resolv.conf points at it (user networks)."""
        for m in self.spec.get("mounts") or []:
            if m.get("destination") == "/etc/resolv.conf":
                try:
                    text = self._read_daemon_file(m.get("source", ""))
                except OSError:
                    return None
                for line in text.splitlines():
                    parts = line.split()
                    if len(parts) >= 2 and parts[0] == "nameserver" and parts[1].startswith("127."):
                        return parts[1]
        return None

    def _shares(self) -> tuple[list[dict[str, Any]], dict[str, str]]:
        sdir = self.share_dir
        share.prepare(sdir)
        try:
            return share.populate(sdir, self.req.rootfs, self.spec.get("mounts") or [], trees=self.trees)
        finally:
            for fd in self.trees or []:
                os.close(fd)
            self.trees = None

    async def setup(self) -> None:
        log.trace("setup begin")
        cgroup_path = cgroups.path_of(self.spec, self.req.id)
        cgroups.place(cgroup_path, os.getpid(), self.linux.get("resources") or {})
        self.cgroup_path = cgroup_path
        self._claim_spare()
        self._namespaces()
        log.trace("namespaces")
        # a spare's tap waits in the spare's own netns: the plumbing helper moves it into ours
        tap_fd = tapmod.open_tap(TAP) if self.own_netns and self.claimed is None else None
        self.share_dir.mkdir(exist_ok=True)
        loop = asyncio.get_running_loop()
        oci_state = {"ociVersion": self.spec.get("ociVersion", "1.0.2"), "id": self.req.id, "status": "created",
                     "pid": os.getpid(), "bundle": str(self.req.bundle),
                     "annotations": self.spec.get("annotations") or {}}
        hook_list = hooks.of(self.spec, "prestart", "createRuntime")
        # QEMU first: its start is the longest wait, and the hook and the plumbing helper are forks of this
        # (large) process that would otherwise run before it
        vm_task = loop.create_task(self._start_vm(tap_fd))
        hooks_task = loop.create_task(hooks.run_async(hook_list, oci_state, self._in_host_namespaces))
        network_task = loop.create_task(self._network(hooks_task))
        try:
            mounts, shares = self._shares()
            log.trace("shares")
            await vm_task
            log.trace("vm ready")
        except BaseException:
            network_task.cancel()
            vm_task.cancel()
            with contextlib.suppress(BaseException):
                await vm_task
            raise
        finally:
            if tap_fd is not None:
                os.close(tap_fd)  # QEMU has its own copy
        res = self.linux.get("resources") or {}
        if self.qmp is None and resize.cpus_needed(res) <= self.size.vcpus and not resize.memory_needed_mib(res):
            plugged: dict[str, Any] = {"warnings": [], "cpus_added": 0}  # a pooled VM as it is: QMP not needed
        else:
            if self.qmp is None:
                self.qmp = await qmp.connect(self.claimed.slot / "qmp.sock",  # type: ignore[union-attr]
                                             alive=lambda: self.qemu.poll() is None)
            plugged = await resize.hotplug(self.qmp.execute, res, self.max_vcpus)
        self.plugged_mib = int(plugged.get("plugged_mib") or 0)
        for w in plugged["warnings"]:
            log.warning(w)
        online = resize.online_request(plugged, self.cpuset_pinned)
        if online:
            await self.agent.request(online, timeout=30)
        streams = self._stdio_setup()
        spec_for_guest = {**self.spec, "mounts": mounts}
        restoring = self.req.restore_images is not None
        if restoring:
            images.bind(self.share_dir, self.req.restore_images)  # type: ignore[arg-type]
        # the guest builds the container while the host finishes the network; the NIC is configured before
        # create returns, so the process (held until start) never runs without it
        create = loop.create_task(self.agent.request({
            "op": "restore" if restoring else "create", "images": IMAGES_DIR, "id": self.req.id,
            "spec": spec_for_guest, "rootfs": "rootfs", "shares": shares,
            "cgroup_layout": cgroups.layout(), "cgroup_path": cgroup_path, "streams": streams, "tty": self.tty,
        }, timeout=300 if restoring else 120))
        try:
            nics = await network_task
            if self.tap_replaced and nics:
                await forked.call(_rewire, TAP, nics[0]["name"])
            log.trace("network")
        except BaseException:
            create.cancel()
            raise
        reply = await create
        log.trace(f"agent create {reply.get('timings')}")
        for nic in nics:
            await self.agent.request({"op": "net_add", "nic": nic}, timeout=30)
        # only now: on user networks Docker's hook is what points resolv.conf at its embedded server
        self.dns_server = self._embedded_dns()
        if self.own_netns and self.dns_server:
            await self.agent.request({"op": "dns_relay", "address": self.dns_server}, timeout=30)
        if self.own_netns and not nics:  # --net=none: still the netns's IPv6 setting, for loopback
            await self.agent.request({"op": "sysctls", "values": _netns_sysctls()}, timeout=30)
        log.trace("nics")
        for w in reply.get("warnings") or []:
            log.warning(w)
        if restoring:
            images.unbind(self.share_dir)
        self.state = State(
            id=self.req.id, bundle=str(self.req.bundle), rootfs=str(self.req.rootfs),
            status=RUNNING if restoring else CREATED,
            pid=os.getpid(), pid_start=proc_start_time(os.getpid()) or 0, created=now_rfc3339(),
            annotations=self.spec.get("annotations") or {}, accel=self.boot_info["accel"],
            boot=self.boot_info["boot"], boot_reason=self.boot_info["reason"], qemu_pid=self.qemu.pid,
            init_guest_pid=int(reply.get("pid") or 0),
            extra={"template": self.boot_info.get("template"), "accel_why": self.boot_info.get("accel_why"),
                   "cgroup_path": cgroup_path, "pool_slot": self.pool_slot},
        )
        self.req.store.save(self.state)
        if self.req.pool and self.boot_info.get("boot") == "templated":
            with contextlib.suppress(OSError):
                pool.refill(self.plan.pool_key, pool.keeper_argv(self.req.tb_mib), self.orig_mnt)

    def _stdio_setup(self) -> dict[str, int]:
        """The init process's host stdio: fds 0/1/2 as containerd gave them (the resident relays them), or for
        -t a pty whose master goes to containerd's console socket and whose slave becomes our terminal."""
        if self.tty:
            if not self.req.console_socket:
                raise RunvmError("a terminal was requested but no --console-socket was given")
            master, slave = os.openpty()
            tty.setraw(slave, termios.TCSANOW)
            console.send_master(self.req.console_socket, master)
            os.close(master)
            fcntl_ctty(slave)
            self.tty_slave = slave
            for fd in (0, 1, 2):
                with contextlib.suppress(OSError):
                    os.close(fd)
        return dict(INIT_STREAMS)

    def _early_frame(self, kind: int, ident: int, payload: bytes) -> None:
        """Nothing but responses is expected before start; anything else waits for the resident."""
        self.early_frames.append((kind, ident, payload))

    async def run(self) -> dict[str, Any]:
        try:
            await self.setup()
            server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            path = self.s / "shim.sock"
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            server.bind(str(path))
            server.listen(64)
        except BaseException:
            await self._stop_vm()
            raise
        return self._handover(server)

    def _handover(self, server: socket.socket) -> dict[str, Any]:
        """Everything the resident needs, as JSON and inheritable fds. QEMU stays our child across the exec."""
        def keep(fd: int) -> int:
            fd = os.dup(fd)
            os.set_inheritable(fd, True)
            return fd

        assert self.agent is not None and self.state is not None
        agent_sock = self.agent.writer.get_extra_info("socket")
        self.agent.writer.transport.pause_reading()  # what arrives from now on stays in the socket for the resident
        unread = bytes(getattr(self.agent.reader, "_buffer", b""))
        fds = {"agent": keep(agent_sock.fileno()), "server": keep(server.fileno())}
        if self.tty_slave is not None:
            fds["tty"] = keep(self.tty_slave)
        h = {
            "id": self.req.id, "state_dir": str(self.d), "sock_dir": str(self.s), "root": str(self.req.store.root),
            "tty": self.tty, "fds": fds, "qemu_pid": self.qemu.pid,
            "qmp_sock": str(self.claimed.slot / "qmp.sock" if self.claimed else self.s / "qmp.sock"),
            "share_dir": str(self.share_dir),
            "own_netns": self.own_netns, "nics": self.nics, "dns_server": self.dns_server,
            "max_vcpus": self.max_vcpus, "cpuset_pinned": self.cpuset_pinned, "boot": self.boot_info,
            "restored": self.req.restore_images is not None, "cgroup_path": self.cgroup_path,
            "resources": self.linux.get("resources") or {},
            "vm": limits.vm(boot=self.boot_info.get("boot") or "templated", tb_mib=self.plan.base.tb_size_mib,
                            plugged_mib=self.plugged_mib,
                            vcpu_threads=self.max_vcpus if self.boot_info.get("accel") == "kvm" else 1),
            "log": {"path": log.path(), "format": log.fmt()}, "sys_path": [REPO, *sys.path],
            "unread": base64.b64encode(unread).decode(),
            "early": [[k, i, base64.b64encode(p).decode()] for k, i, p in self.early_frames],
        }
        self._ready("ok")
        return h


def become_resident(h: dict[str, Any]) -> None:
    """exec a fresh interpreter that imports only what a running container needs (no ssl, no qemu.qmp)."""
    path = Path(h["state_dir"]) / "handover.json"
    path.write_text(json.dumps(h))
    boot = ("import sys; sys.modules['ssl'] = None; import json; h = json.load(open(sys.argv[1])); "
            "sys.path[:0] = h['sys_path']; from runtime.runvm.shim.vm_shim import resident_main; "
            "resident_main(sys.argv[1], h)")
    try:
        os.execv(sys.executable, [sys.executable, "-S", "-c", boot, str(path)])
    except OSError:
        os._exit(255)


def fcntl_ctty(fd: int) -> None:
    import fcntl

    with contextlib.suppress(OSError):
        fcntl.ioctl(fd, termios.TIOCSCTTY, 0)


def _take_tap(tap: str, tap_ns: str) -> None:
    """Best effort: when the spare's VM died before this (its tap with it), the vm-shim restores a VM of its
    own behind a new tap of the same name here, which the wiring then finds."""
    from pyroute2 import IPRoute

    here = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        there = os.open(tap_ns, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        os.close(here)
        return
    try:
        setns(there, CLONE_NEWNET)
        ipr = IPRoute()  # bound to the spare's netns for as long as it is open
        setns(here, CLONE_NEWNET)
        with ipr:
            found = ipr.link_lookup(ifname=tap)
            if not found:
                raise RunvmError(f"the pooled VM's tap {tap} is not in its netns")
            ipr.link("set", index=found[0], net_ns_pid=os.getpid())
    finally:
        os.close(here)
        os.close(there)


NETNS_SYSCTLS = ("net/ipv6/conf/all/disable_ipv6", "net/ipv6/conf/default/disable_ipv6")
"""What Docker's network set-up writes in the netns itself (not in the spec): the guest, whose network stack
is the container's, gets the same (no IPv6 unless the network has it, as under runc)."""


def _netns_sysctls() -> dict[str, str]:
    values = {}
    for key in NETNS_SYSCTLS:
        try:
            with open(f"/proc/sys/{key}") as f:
                values[key.replace("/", ".")] = f.read().strip()
        except OSError:
            continue
    return values


def _rewire(tap: str, veth: str) -> bool:
    """In a forked child (pyroute2 stays out of the vm-shim)."""
    from runtime.runvm.net import plumb

    return plumb.wire_named(tap, veth, replace=True)


def _plumb_first_veth(go_fd: int, tap: str, tap_ns: str | None) -> dict[str, Any] | None:
    """In the forked child: import pyroute2 while the hook runs, then wire the first veth to the tap (a pooled
    VM's tap is first moved here from the spare's netns)."""
    from pyroute2 import IPRoute

    from runtime.runvm.net import plumb

    if tap_ns:
        _take_tap(tap, tap_ns)
    os.read(go_fd, 1)
    with IPRoute() as ipr:
        found = plumb.veths(ipr)
        have_tap = bool(ipr.link_lookup(ifname=tap))
    if not found:
        return None
    if have_tap:  # no tap: a pooled VM that died; the replacement's tap is wired once it exists (tap_replaced)
        plumb.wire(tap, found[0])
    return found[0]


