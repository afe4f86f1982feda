"""Stage: the container's VM, by the fastest way that works: a claimed pool spare; else a restore from the
template, when there is a usable one; else a cold boot (and a template built in the background for the next
create). Ends with the guest agent answering on its channel."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from runtime.runvm import cgroups, log, wait
from runtime.runvm.errors import RunvmError
from runtime.runvm.net import tap as tapmod
from runtime.runvm.shim.constants import TAP
from runtime.runvm.shim.link import Link
from runtime.runvm.shim.stages.spare import Spare
from runtime.runvm.vm import plan as planmod
from runtime.runvm.vm import qemu, qmp, template

RESTORE_PING_TIMEOUT = 10.0
COLD_PING_TIMEOUT = 120.0

Frame = Callable[[int, int, bytes], None]


@dataclass(frozen=True)
class BootInput:
    plan: planmod.Plan
    state_dir: Path
    sock_dir: Path
    share_dir: Path
    boot: str
    """auto | cold (--boot=cold: no template, none built)."""
    own_netns: bool
    cgroup_path: str
    resources: dict[str, Any]
    on_frame: Frame
    """Where agent frames other than responses go before the resident takes over."""


@dataclass
class Vm:
    """The VM as far as it got: filled in while it starts, so that a failure at any point can stop it."""

    spare: Spare | None
    proc: subprocess.Popen[bytes] | qemu.Adopted | None = None
    qmp: Any = None
    """qemu.qmp's client, while set-up holds QMP (never across the exec)."""
    qmp_sock: Path | None = None
    agent: Link | None = None
    info: dict[str, Any] = field(default_factory=dict)
    """accel, accel_why, template, boot (templated | cold), reason: what `runvm state` and the logs report."""
    tap_replaced: bool = False
    """A spare that failed after its tap was claimed: the veth is wired to the replacement's tap again."""

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


def agent_of(vm: Vm) -> Link:
    assert vm.agent is not None, "the guest agent is not connected"
    return vm.agent


def _prepare_request() -> dict[str, Any]:
    """The first request doubles as the ping: fresh randomness and the host's clock for the guest."""
    return {"op": "prepare", "time_ns": time.time_ns(), "seed": base64.b64encode(os.urandom(64)).decode()}


async def start(inp: BootInput, vm: Vm, tap_fd: int | None) -> None:
    """A claimed spare; else a restore from the template; else a cold boot, and why."""
    p = inp.plan
    key = p.key
    vm.info = {"accel": p.accel, "accel_why": p.accel_why, "template": key}
    if vm.spare is not None:
        try:
            await _adopt(inp, vm, vm.spare)
            vm.info.update(boot="templated",
                           reason=f"restored from template {key} ahead of time (pool spare {vm.spare.slot.name})")
            return
        except Exception as e:
            log.warning(f"pool spare {vm.spare.slot.name} unusable ({e}); restoring a VM instead")
            await stop(vm)  # its tap goes with it
            vm.spare = None
            vm.tap_replaced = True  # the veth may already be wired to the old tap: set-up wires it again
            if inp.own_netns:
                own_tap = tapmod.open_tap(TAP)
                try:
                    await start(inp, vm, own_tap)
                finally:
                    os.close(own_tap)
                return
    base = replace(p.base, tap_fd=tap_fd, share_dir=inp.share_dir)
    tpl, why = template.find(key) if inp.boot != "cold" else (None, "cold boot requested (--boot=cold)")
    if tpl is not None:
        cfg = replace(p.restored(tpl), tap_fd=tap_fd, share_dir=inp.share_dir)
        try:
            await _launch(inp, vm, cfg)
            log.trace("qemu launched")
            await qmp.restore(vm.qmp, tpl.state)
            log.trace("restored")
            await _connect_agent(inp, vm, RESTORE_PING_TIMEOUT, warm=False)
            vm.info.update(boot="templated", reason="restored from template " + key)
            template.mark_used(tpl)
            return
        except Exception as e:
            why = f"restore from template {key} failed ({e}); template discarded"
            log.warning(why)
            template.discard(key)
            await stop(vm)
    log.info(f"runvm: cold boot: {why}")
    if inp.boot != "cold":
        _build_template_later()
    await _launch(inp, vm, base)
    await _connect_agent(inp, vm, COLD_PING_TIMEOUT, warm=True)
    vm.info.update(boot="cold", reason=why)


async def _adopt(inp: BootInput, vm: Vm, spare: Spare) -> None:
    """Take over the claimed spare: the held agent channel (fresh randomness and clock), its cgroup."""
    c = spare.claimed
    vm.proc = qemu.Adopted(c.qemu_pid)
    vm.qmp_sock = spare.qmp_sock
    cgroups.place(inp.cgroup_path, c.qemu_pid, inp.resources)
    reader, writer = await asyncio.open_unix_connection(sock=c.agent)
    if c.unread:
        reader.feed_data(c.unread)
    link = Link(reader, writer, inp.on_frame, name="guest agent")
    try:
        await link.request(_prepare_request(), timeout=5.0)
    except BaseException:
        link.close()
        raise
    vm.agent = link


def _build_template_later() -> None:
    if os.environ.get("RUNVM_NO_TEMPLATE_BUILD"):
        return
    with contextlib.suppress(OSError):
        template.build_in_background([sys.executable, "-m", "runtime.runvm.cli", "template", "build", "--quiet"])


async def _launch(inp: BootInput, vm: Vm, cfg: qemu.VMConfig) -> None:
    proc = vm.proc = qemu.launch(cfg, inp.state_dir / "qemu.log")
    vm.qmp_sock = cfg.qmp_sock
    try:
        vm.qmp = await qmp.connect(cfg.qmp_sock, alive=lambda: proc.poll() is None)
    except RunvmError:
        raise RunvmError(f"QEMU did not start: {qemu_log_tail(inp.state_dir)}") from None


def qemu_log_tail(state_dir: Path) -> str:
    try:
        return " ".join((state_dir / "qemu.log").read_text(errors="replace").split()[-60:])
    except OSError:
        return "(no log)"


async def connect_qmp(vm: Vm) -> Any:
    """QMP for a VM set-up did not launch (a spare): only when something must be hot-plugged."""
    if vm.qmp is None:
        proc, sock = vm.proc, vm.qmp_sock
        assert proc is not None and sock is not None
        vm.qmp = await qmp.connect(sock, alive=lambda: proc.poll() is None)
    return vm.qmp


async def stop(vm: Vm) -> None:
    """Set-up's failure clean-up: QMP and the agent channel let go, then the VM ends (stop.py's way)."""
    if vm.qmp is not None:
        with contextlib.suppress(Exception):
            await vm.qmp.disconnect()
        vm.qmp = None
    if vm.agent is not None:
        vm.agent.close()
        vm.agent = None
    if vm.proc is not None:
        qemu.stop(vm.proc, vm.qmp_sock)


async def _connect_agent(inp: BootInput, vm: Vm, timeout: float, warm: bool) -> None:
    proc = vm.proc
    assert proc is not None

    def check() -> None:
        if proc.poll() is not None:
            raise RunvmError(f"QEMU exited with {proc.returncode}: {qemu_log_tail(inp.state_dir)}")

    async def attempt(left: float) -> Link:
        reader, writer = await asyncio.open_unix_connection(str(inp.sock_dir / "agent.sock"))
        link = Link(reader, writer, inp.on_frame, name="guest agent")
        try:
            await link.request(_prepare_request(), timeout=max(0.5, min(5.0, left)))
        except BaseException:
            link.close()
            link.task.cancel()
            raise
        return link

    vm.agent = await wait.until_async(attempt, "the guest agent to answer", timeout, check=check)
    if warm:  # a cold guest has not had the template's warm-up
        await vm.agent.request({"op": "warm", "cgroup_layout": cgroups.layout()}, timeout=120)
