"""A pool keeper: restores one spare VM from the template into its slot, holds it, and hands it to the first
create that claims it. Run detached by pool.refill: `python -m runtime.runvm.vm.keeper TB_MIB SLOT_DIR`.

The spare gets what a create would otherwise make first: a netns of its own with the tap (the claimant moves
the tap into the container's netns), a private mount namespace (the claimant joins it and binds the rootfs under
the share), the pool's cgroup (the claimant moves QEMU into the container's). Its QEMU has no PDEATHSIG, since
it must outlive the keeper; instead the agent is told to `hold`: it powers the guest off when the channel's host
end closes, so a kill -9 of the keeper, or later of the vm-shim holding the channel, still ends the VM.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from runtime.runvm import cgroups, wait
from runtime.runvm.errors import RunvmError
from runtime.runvm.net import tap as tapmod
from runtime.runvm.shim.constants import TAP
from runtime.runvm.shim.link import Link
from runtime.runvm.state import proc_start_time
from runtime.runvm.sys import CLONE_NEWNET, private_mount_namespace, unshare
from runtime.runvm.vm import plan as planmod
from runtime.runvm.vm import pool, qemu, qmp, template

READY_TIMEOUT_S = 10.0


class Keeper:
    def __init__(self, slot: Path, tb_mib: int | None) -> None:
        self.slot = slot
        self.tb_mib = tb_mib
        self.proc: subprocess.Popen[bytes] | None = None
        self.agent: Link | None = None

    async def restore(self) -> None:
        unshare(CLONE_NEWNET)
        tap_fd = tapmod.open_tap(TAP)
        # the claimant brings the rootfs from its own view of the mounts (share.clone_sources), so this namespace
        # needs only the host paths QEMU opens: the template, the guest image, the slot
        private_mount_namespace()
        (self.slot / "share").mkdir(exist_ok=True)
        p = planmod.make(self.slot / "share", self.slot, tap_fd, self.tb_mib, None)
        if self.slot.parent.name != p.pool_key:
            raise RunvmError(f"slot {self.slot} is not for pool key {p.pool_key}")
        tpl, why = template.find(p.key)
        if tpl is None:
            raise RunvmError(f"no spare without a template: {why}")
        proc = self.proc = qemu.launch(p.restored(tpl), self.slot / "qemu.log", die_with_parent=False)
        os.close(tap_fd)
        pool.write_info(self.slot, keeper=os.getpid(), keeper_start=proc_start_time(os.getpid()),
                        qemu=proc.pid, qemu_start=proc_start_time(proc.pid), key=p.pool_key)
        client = await qmp.connect(self.slot / "qmp.sock", alive=lambda: proc.poll() is None)
        try:
            await qmp.restore(client, tpl.state)
        finally:
            await client.disconnect()
        template.mark_used(tpl)
        self.agent = await self._hold()

    async def _hold(self) -> Link:
        proc = self.proc
        assert proc is not None

        async def attempt(left: float) -> Link:
            reader, writer = await asyncio.open_unix_connection(str(self.slot / "agent.sock"))
            link = Link(reader, writer, name="guest agent")
            start = time.monotonic()
            await link.request({"op": "hold"}, timeout=max(0.5, left))
            await link.request({"op": "mount_share"}, timeout=max(0.5, left - (time.monotonic() - start)))
            return link

        def check() -> None:
            if proc.poll() is not None:
                raise RunvmError("the spare's guest agent did not answer: its QEMU exited")

        return await wait.until_async(attempt, "the spare's guest agent to answer", READY_TIMEOUT_S, check=check)

    async def serve(self) -> bool:
        """Wait for a claim, the VM's end or the idle limit. True when the VM was handed over."""
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(str(self.slot / "claim.sock"))
        server.listen(4)
        server.setblocking(False)
        loop = asyncio.get_running_loop()
        vm_gone: asyncio.Future[None] = loop.create_future()
        assert self.proc is not None
        pidfd = os.pidfd_open(self.proc.pid)

        def ended() -> None:
            if not vm_gone.done():
                vm_gone.set_result(None)

        loop.add_reader(pidfd, ended)
        pool.write_info(self.slot, ready=time.time())
        try:
            while True:
                accept = loop.create_task(loop.sock_accept(server))
                either: set[asyncio.Future[Any]] = {accept, vm_gone}
                done, _ = await asyncio.wait(either, timeout=pool.IDLE_S,
                                             return_when=asyncio.FIRST_COMPLETED)
                if accept not in done:
                    accept.cancel()
                    return False
                conn, _addr = accept.result()
                with conn:
                    if await self._hand_over(conn):
                        return True
        finally:
            loop.remove_reader(pidfd)
            os.close(pidfd)
            (self.slot / "claim.sock").unlink(missing_ok=True)
            server.close()

    async def _hand_over(self, conn: socket.socket) -> bool:
        """Pass the held agent channel (and any bytes already read from it) to the claimant."""
        loop = asyncio.get_running_loop()
        conn.setblocking(False)
        try:
            line = await asyncio.wait_for(loop.sock_recv(conn, 4096), pool.CLAIM_TIMEOUT_S)
            claimed_for = int(json.loads(line)["pid"])
            pid, uid, _gid = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                                                  struct.calcsize("3i")))
        except (OSError, ValueError, KeyError, TypeError, TimeoutError):
            return False
        if uid != 0 or pid != claimed_for:
            return False  # only root's vm-shims take VMs, and the slot records who really holds the channel
        owner = pid
        assert self.agent is not None and self.proc is not None
        qemu_start = proc_start_time(self.proc.pid)
        if self.proc.poll() is not None or qemu_start is None:
            return False  # the VM is gone: nothing to hand over (serve sees it end)
        # no byte meant for the claimant may be read here: the transport stops reading before the snapshot of
        # what it had read already, and everything after that stays in the socket for the claimant
        self.agent.writer.transport.pause_reading()  # type: ignore[attr-defined]  # a socket transport reads too
        self.agent.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.agent.task
        unread = self.agent.unread()
        agent_fd = self.agent.writer.get_extra_info("socket").fileno()
        pool.write_info(self.slot, claimed_by=owner, claimed_by_start=proc_start_time(owner), claimed=time.time())
        reply = json.dumps({"qemu": self.proc.pid, "qemu_start": qemu_start,
                            "unread": base64.b64encode(unread).decode()}).encode()
        try:
            conn.setblocking(True)
            conn.settimeout(pool.CLAIM_TIMEOUT_S)
            socket.send_fds(conn, [reply], [agent_fd])
            if conn.recv(1) != b"k":
                raise OSError("no acknowledgement")
        except OSError as e:
            raise RunvmError(f"claimant {owner} went away during the hand-over ({e})") from e
        return True

    def stop(self) -> None:
        """A spare that was never handed over: its VM ends (stop.py's way), its slot goes."""
        if self.proc is not None:
            qemu.stop(self.proc, self.slot / "qmp.sock")
        pool.remove_slot(self.slot)


def _log_failure(line: str, keep: int = 64 * 1024) -> None:
    """A keeper has no stdio; its failures go to one file in the pool directory, kept to its last 64 KiB."""
    path = pool.POOL_DIR / "keeper-failures.log"
    with contextlib.suppress(OSError):
        old = path.read_bytes()[-keep:] if path.exists() else b""
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(old + line.encode())
        os.replace(tmp, path)


def main(argv: list[str]) -> int:
    tb_mib, slot = int(argv[0]) or None, Path(argv[1])
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    keeper = Keeper(slot, tb_mib)
    handed_over = False

    async def run() -> None:
        nonlocal handed_over
        # first of all out of the cgroup of the container whose create started us (its delete removes it)
        cgroups.place(pool.POOL_CGROUP, os.getpid(), {"cpu": {"shares": pool.POOL_CPU_SHARES}})
        pool.prune()  # in the background, here: slots of containers that died before `runvm delete` ran
        await keeper.restore()
        handed_over = await keeper.serve()

    try:
        asyncio.run(run())
    except BaseException as e:
        _log_failure(f"{time.strftime('%F %T')} {slot.name}: {e.__class__.__name__}: {e}\n")
    finally:
        if not handed_over:
            keeper.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
