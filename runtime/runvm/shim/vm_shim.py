"""The resident vm-shim: what the vm-shim becomes (by exec, same pid) once the container is set up, for the
rest of the container's life. It owns QEMU (its child, which dies with it), the agent's channel, the container's
stdio, forwards signals, serves the CLI's requests on the control socket, routes exec-shims' streams, and exits
with the container process's exit code.

It runs in a fresh interpreter without ssl and without qemu.qmp (QMP operations go through a short-lived helper):
its memory is host memory every idle container costs.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from runtime.agent import protocol
from runtime.runvm import log, statefile
from runtime.runvm.errors import RunvmError
from runtime.runvm.shim import console, forked, resize
from runtime.runvm.shim.constants import FORWARDED_SIGNALS, IMAGES_DIR, INIT_STREAMS, STAND_IN_DIR
from runtime.runvm.shim.link import Link
from runtime.runvm.shim.quiet import quiet_python_streams
from runtime.runvm.shim.relay import FdToStream, StreamToFd
from runtime.runvm.statefile import CREATED, PAUSED, RUNNING, STOPPED


def resident_main(handover_path: str, h: dict[str, Any]) -> None:
    """Entry point after the exec. Never returns."""
    with contextlib.suppress(OSError):
        os.unlink(handover_path)
    quiet_python_streams(Path(h["state_dir"]) / "shim.log")
    log.configure(h["log"]["path"], h["log"]["format"])
    code = 255
    try:
        code = asyncio.run(_with_pidfd_watcher(VmShim(h).serve()))
    except BaseException as e:  # the container's exit status must still be reported
        log.error(f"runvm shim failed: {e!r}")
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
    def __init__(self, h: dict[str, Any]) -> None:
        self.h = h
        self.id = h["id"]
        self.d = Path(h["state_dir"])
        self.s = Path(h["sock_dir"])
        self.tty = bool(h["tty"])
        self.qemu_pid = int(h["qemu_pid"])
        self.own_netns = bool(h["own_netns"])
        self.nics: dict[str, dict[str, Any]] = h["nics"]
        self.dns_server: str | None = h["dns_server"]
        self.max_vcpus = int(h["max_vcpus"])
        self.cpuset_pinned = bool(h["cpuset_pinned"])
        self.boot_info = h["boot"]
        self.agent: Link | None = None
        self.routes: dict[int, Link] = {}
        self.exec_owner: dict[str, Link] = {}
        self.next_stream = 4
        self.outputs: dict[int, StreamToFd] = {}
        self.stdin_relay: FdToStream | None = None
        self.exit_future: asyncio.Future[int] | None = None
        self.tty_slave: int | None = h["fds"].get("tty")
        self.oom_killed = False
        self.stand_ins: Any = None
        self.qmp_lock = asyncio.Lock()
        self.status = statefile.read(h["state_dir"])["status"]

    # ---- start-up after the exec -------------------------------------------------------------------
    async def _attach(self) -> asyncio.AbstractServer:
        fds = self.h["fds"]
        reader, writer = await asyncio.open_unix_connection(sock=socket.socket(fileno=fds["agent"]))
        if self.h.get("unread"):
            reader.feed_data(base64.b64decode(self.h["unread"]))
        self.agent = Link(reader, writer, self._on_agent_frame, name="guest agent")
        send = self._to_agent
        if self.tty_slave is not None:
            self.outputs = {INIT_STREAMS["stdout"]: StreamToFd(os.dup(self.tty_slave), INIT_STREAMS["stdout"], send)}
            self.stdin_relay = FdToStream(os.dup(self.tty_slave), INIT_STREAMS["stdin"], send)
        else:
            self.outputs = {INIT_STREAMS["stdout"]: StreamToFd(1, INIT_STREAMS["stdout"], send),
                            INIT_STREAMS["stderr"]: StreamToFd(2, INIT_STREAMS["stderr"], send)}
            self.stdin_relay = FdToStream(0, INIT_STREAMS["stdin"], send)
        for kind, ident, payload in self.h.get("early") or []:
            self._on_agent_frame(kind, ident, base64.b64decode(payload))
        return await asyncio.start_unix_server(self._client, sock=socket.socket(fileno=fds["server"]))

    async def serve(self) -> int:
        loop = asyncio.get_running_loop()
        self.exit_future = loop.create_future()
        server = await self._attach()
        self._signals()
        self._watch_qemu()
        if self.h.get("restored") and self.stdin_relay is not None:
            self.stdin_relay.start()
        net_task = loop.create_task(self._watch_network())
        code = await self.exit_future
        log.trace(f"exit {code}")
        net_task.cancel()
        server.close()
        await self._drain_outputs()
        log.trace("drained")
        if self.stand_ins is not None:
            self.stand_ins.stop_all()
        self._set_status(STOPPED, exit_code=code, oom_killed=self.oom_killed)
        self._stop_vm()
        log.trace("vm stopped")
        return code

    def _stop_vm(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.qemu_pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.qemu_pid, 0)

    async def qmp_helper(self, op: dict[str, Any], pass_fds: tuple[int, ...] = ()) -> dict[str, Any]:
        """One QMP operation in a short-lived helper process (one at a time: QMP takes one client)."""
        async with self.qmp_lock:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "runtime.runvm.shim.qmp_helper", stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, pass_fds=pass_fds,
                env={**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)})
            out, _ = await proc.communicate(json.dumps({"qmp_sock": self.h["qmp_sock"], **op}).encode())
        try:
            reply = json.loads(out or b"{}")
        except ValueError:
            reply = {}
        if not reply.get("ok"):
            raise RunvmError(reply.get("error") or f"QMP helper failed ({op.get('op')})")
        return reply

    async def op_checkpoint(self, req: dict[str, Any], link: Link) -> dict[str, Any]:
        if self._status() not in (RUNNING, PAUSED):
            raise RunvmError(f"cannot checkpoint a container that is {self._status()}")
        from runtime.runvm.shim import images

        image_path = Path(req["image_path"])
        images.bind(self.d / "share", image_path)
        try:
            reply = await self.agent.request({"op": "checkpoint", "images": IMAGES_DIR,
                                              "leave_running": bool(req.get("leave_running"))}, timeout=300)
        finally:
            images.unbind(self.d / "share")
        (image_path / "runvm.json").write_text(json.dumps({"tty": self.tty, "info": reply.get("info") or {}}))
        return {}

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
            await forked.call(oom.signal_host_cgroup, self.h["cgroup_path"])

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
            import traceback

            log.error(f"shim request {req.get('op')} failed: {traceback.format_exc()}")
            link.respond(ident, {"ok": False, "error": f"{e.__class__.__name__}: {e}"})

    def _status(self) -> str:
        return self.status

    def _set_status(self, status: str, **extra: Any) -> None:
        self.status = status
        statefile.update(str(self.d), status=status, **extra)

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
        res = req.get("resources") or {}
        if (res.get("cpu") or {}).get("cpus"):
            self.cpuset_pinned = True
        warnings: list[str] = []
        if resize.cpus_needed(res) > 1 or resize.memory_needed_mib(res):
            plugged = await self.qmp_helper({"op": "hotplug", "resources": res, "max_vcpus": self.max_vcpus})
            warnings += plugged.get("warnings") or []
            online = resize.online_request(plugged, self.cpuset_pinned)
            if online:
                await self.agent.request(online, timeout=30)
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
        fd = os.pidfd_open(self.qemu_pid)
        loop = asyncio.get_running_loop()

        def gone() -> None:
            loop.remove_reader(fd)
            os.close(fd)
            try:
                _, status = os.waitpid(self.qemu_pid, 0)
                killed = os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
            except ChildProcessError:
                status, killed = -1, False
            if self.exit_future is not None and not self.exit_future.done():
                log.error(f"the container's VM stopped unexpectedly (QEMU wait status {status})")
                self.exit_future.set_result(128 + signal.SIGKILL if killed else 255)

        loop.add_reader(fd, gone)

    async def _watch_network(self) -> None:
        """`docker network connect/disconnect` while running: NICs hot-plugged and removed (netconnect.py)."""
        if not self.own_netns:
            return
        from runtime.runvm.shim import netconnect

        await netconnect.watch(self)

    async def _drain_outputs(self, timeout: float = 5.0) -> None:
        if self.stdin_relay is not None:
            self.stdin_relay.stop()
        waits = [o.flushed for o in self.outputs.values()]
        if waits:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*waits), timeout)
