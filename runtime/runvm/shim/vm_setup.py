"""The vm-shim's first half: forked by `runvm create` (or `restore`), it sets the container up and then becomes
the resident shim (vm_shim.py) by exec, keeping its pid: the container's pid for containerd.

Set-up needs what the resident never will: QMP (qemu.qmp), the template logic, the KVM probe, hooks. Throwing
them away with the interpreter keeps the part that lives as long as the container small. Its stages, in order,
are the modules of stages/ (VmSetup.setup reads as their list); what the resident gets is stages.handover's.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
import traceback
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runtime.runvm import cgroups, hooks, limits, log
from runtime.runvm.errors import RunvmError
from runtime.runvm.net import tap as tapmod
from runtime.runvm.shim.constants import TAP
from runtime.runvm.shim.quiet import quiet_python_streams
from runtime.runvm.shim.stages import boot, container, namespaces, network, record, resources, shares, spare, stdio
from runtime.runvm.shim.stages.handover import Handover, become_resident, inheritable
from runtime.runvm.shim.stages.network import Network
from runtime.runvm.state import Store
from runtime.runvm.vm import plan as planmod
from runtime.runvm.vm import qemu

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
    """asyncio's default child watcher is a thread per process; the shim must stay single-threaded (it forks).
    SIGTERM (`runvm create` giving up on us) cancels the set-up, whose clean-up stops the VM."""
    import warnings

    loop = asyncio.get_running_loop()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        watcher = asyncio.PidfdChildWatcher()
        watcher.attach_loop(loop)
        asyncio.set_child_watcher(watcher)
    task = loop.create_task(coro)
    loop.add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        return await task
    finally:
        loop.remove_signal_handler(signal.SIGTERM)


@dataclass(frozen=True)
class SetUp:
    """What the stages made that the handover passes on."""

    share_dir: Path
    cgroup_path: str
    made: container.Container
    io: stdio.Stdio
    plugged: resources.Plugged
    hooked: bool
    """The spec had prestart/createRuntime hooks (Docker's network set-up before 26 is one)."""


class VmSetup:
    def __init__(self, req: Request) -> None:
        self.req = req
        self.d = req.state_dir
        self.s = req.store.sock_dir(req.id)
        self.spec = req.spec
        self.linux = req.spec.get("linux") or {}
        self.resources: dict[str, Any] = self.linux.get("resources") or {}
        self.tty = bool(req.spec["process"].get("terminal"))
        self.max_vcpus = qemu.Size().max_vcpus
        self.cpuset_pinned = bool((self.resources.get("cpu") or {}).get("cpus"))
        self.size = qemu.Size()
        self.plan = planmod.make(self.d / "share", self.s, None, req.tb_mib, self.d / "console.log")
        self.early_frames: list[tuple[int, int, bytes]] = []
        self.vm = boot.Vm(spare=None)
        self.ns: namespaces.Namespaces | None = None
        self.ready_sent = False

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

    def _early_frame(self, kind: int, ident: int, payload: bytes) -> None:
        """Nothing but responses is expected before start; anything else waits for the resident."""
        self.early_frames.append((kind, ident, payload))

    # ---- set-up: its stages, in order ---------------------------------------------------------------
    async def setup(self) -> SetUp:
        req, vm = self.req, self.vm
        log.trace("setup begin")
        cgroup_path = cgroups.path_of(self.spec, req.id)
        cgroups.place(cgroup_path, os.getpid(), self.resources)
        if spare.wanted(req.pool, req.boot, req.restore_images is not None):
            vm.spare = spare.claim(self.plan.pool_key, req.id)
        taken = vm.spare  # the slot is ours from now on, even if the VM in it fails: `delete` removes it
        share_dir = taken.share_dir if taken else self.d / "share"
        ns = self.ns = namespaces.enter(self.spec, req.rootfs, taken.vm_mnt if taken else None)
        log.trace("namespaces")
        # a spare's tap waits in the spare's own netns: the plumbing helper moves it into ours
        tap_fd = tapmod.open_tap(TAP) if ns.own_netns and taken is None else None
        share_dir.mkdir(exist_ok=True)
        loop = asyncio.get_running_loop()
        oci_state = {"ociVersion": self.spec.get("ociVersion", "1.0.2"), "id": req.id, "status": "created",
                     "pid": os.getpid(), "bundle": str(req.bundle), "annotations": self.spec.get("annotations") or {}}
        hook_list = hooks.of(self.spec, "prestart", "createRuntime")
        # QEMU first: its start is the longest wait, and the hook and the plumbing helper are forks of this
        # (large) process that would otherwise run before it
        boot_in = boot.BootInput(self.plan, self.d, self.s, share_dir, req.boot, ns.own_netns, cgroup_path,
                                 self.resources, self._early_frame)
        vm_task = loop.create_task(boot.start(boot_in, vm, tap_fd))
        hooks_task = loop.create_task(hooks.run_async(hook_list, oci_state, ns.in_host_namespaces))
        network_task = loop.create_task(network_plumb(ns.own_netns, vm, hooks_task))
        try:
            shared = shares.populate(share_dir, req.rootfs, self.spec.get("mounts") or [], ns.trees)
            ns.trees = None
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
        plugged = await resources.apply(vm, self.resources, self.size, self.max_vcpus, self.cpuset_pinned)
        io = stdio.setup(self.tty, req.console_socket)
        made = await container.create(
            container.ContainerInput(req.id, self.spec, shared.mounts, shared.shares, io.streams, self.tty,
                                     cgroup_path, share_dir, ns.own_netns, req.restore_images),
            boot.agent_of(vm), network_task, vm.tap_replaced, ns.read_daemon_file)
        record.save(req.store, record.RecordInput(
            req.id, req.bundle, req.rootfs, self.spec.get("annotations") or {}, req.restore_images is not None,
            vm.info, vm.pid, made.init_guest_pid, cgroup_path, str(taken.slot) if taken else None))
        record.refill_pool(req.pool, vm.info, self.plan.pool_key, req.tb_mib, ns.orig_mnt)
        return SetUp(share_dir, cgroup_path, made, io, plugged, bool(hook_list))

    async def run(self) -> Handover:
        try:
            done = await self.setup()
            server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            path = self.s / "shim.sock"
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            server.bind(str(path))
            server.listen(64)
        except BaseException:
            await boot.stop(self.vm)
            raise
        return self._handover(server, done)

    def _handover(self, server: socket.socket, done: SetUp) -> Handover:
        """Everything the resident needs, and the agent's channel and control socket as inheritable fds. QEMU
        stays our child across the exec."""
        vm, agent = self.vm, boot.agent_of(self.vm)
        share_dir, cgroup_path, made, io, plugged = done.share_dir, done.cgroup_path, done.made, done.io, done.plugged
        agent_sock = agent.writer.get_extra_info("socket")
        agent.writer.transport.pause_reading()  # type: ignore[attr-defined]  # the rest stays for the resident
        unread = agent.unread()
        fds = {"agent": inheritable(agent_sock.fileno()), "server": inheritable(server.fileno())}
        if io.tty_slave is not None:
            fds["tty"] = inheritable(io.tty_slave)
        # no veth at create and no hook that could have made one: Docker 26+ sets the netns up after create
        ns = self.ns
        late = (ns is not None and ns.own_netns and not made.net.nics and not done.hooked
                and self.req.restore_images is None)
        resolv_name = None
        if ns is not None and late and not made.dns_server:
            resolv_name = network.late_resolv_conf(ns, self.spec, fds)
        assert vm.qmp_sock is not None
        h = Handover(
            id=self.req.id, state_dir=str(self.d), sock_dir=str(self.s), root=str(self.req.store.root),
            tty=self.tty, fds=fds, qemu_pid=vm.pid, qmp_sock=str(vm.qmp_sock), share_dir=str(share_dir),
            own_netns=bool(self.ns and self.ns.own_netns), nics=made.net.nics, dns_server=made.dns_server,
            max_vcpus=self.max_vcpus, cpuset_pinned=self.cpuset_pinned, boot=vm.info,
            restored=self.req.restore_images is not None, cgroup_path=cgroup_path, resources=self.resources,
            vm=limits.vm(boot=vm.info.get("boot") or "templated", tb_mib=self.plan.base.tb_size_mib,
                         plugged_mib=plugged.plugged_mib,
                         vcpu_threads=self.max_vcpus if vm.info.get("accel") == "kvm" else 1),
            log={"path": log.path(), "format": log.fmt()}, sys_path=[REPO, *sys.path], unread=unread,
            early=list(self.early_frames), resolv_name=resolv_name, late_network=late)
        self._ready("ok")
        return h


def network_plumb(own_netns: bool, vm: boot.Vm, hooks_task: asyncio.Task[None]) -> Coroutine[Any, Any, Network]:
    """The network stage, told the spare's QEMU only once it runs (the boot may have given the spare up)."""
    return network.plumb(own_netns, lambda: vm.spare.claimed.qemu_pid if vm.spare else None, hooks_task)
