"""The resident vm-shim: what the vm-shim becomes (by exec, same pid) once the container is set up, for the rest
of the container's life. It owns QEMU (its child, which dies with it), the agent's channel and the container's
stdio, forwards signals, serves the CLI's requests on the control socket, routes exec-shims' streams, and exits
with the container process's exit code.

Its memory is host memory every idle container costs, so it runs in a fresh interpreter on a small selectors
loop: no asyncio, no ssl, no qemu.qmp, no pyroute2. The rare operations that need those (hot-plugging vCPUs,
memory or NICs) run in short-lived helper processes.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import socket
import sys
from collections.abc import Callable

from runtime.runvm import log, statefile
from runtime.runvm.shim import console, resize
from runtime.runvm.shim.conn import Conn
from runtime.runvm.shim.constants import FORWARDED_SIGNALS, IMAGES_DIR, INIT_STREAMS, STAND_IN_DIR
from runtime.runvm.shim.loop import Loop
from runtime.runvm.shim.quiet import quiet_python_streams
from runtime.runvm.shim.relay import FdToStream, StreamToFd
from runtime.runvm.shim.stages import handover
from runtime.runvm.statefile import CREATED, PAUSED, RUNNING, STOPPED
from runtime.wire import frames

TYPE_CHECKING = False  # not typing's: importing typing costs every resident shim ~0.7 MB
if TYPE_CHECKING:
    from typing import Any

    from runtime.runvm.shim.stages.handover import Handover

    Respond = Callable[[dict[str, Any]], None]

DRAIN_S = 5.0
NET_DEBOUNCE_S = 0.3
OOM_GRACE_S = 0.2
"""After the relayed OOM: time for containerd to read its eventfd before it sees the exit."""


def resident_main(handover_path: str, raw: dict[str, Any]) -> None:
    """Entry point after the exec. Never returns."""
    with contextlib.suppress(OSError):
        os.unlink(handover_path)
    h = handover.from_json(raw)
    quiet_python_streams(os.path.join(h.state_dir, "shim.log"))
    log.configure(h.log["path"], h.log["format"])
    shim = VmShim(h)
    try:
        shim.serve()
    except BaseException as e:  # the container's exit status must still be reported
        log.error(f"runvm shim failed: {e!r}")
        shim.code = 255
        shim._stop_vm()  # the clean way while we can (a kill -9 of the shim leaves it to PDEATHSIG)
    finally:
        os._exit(shim.code)


def _error(e: BaseException | str) -> dict[str, Any]:
    return {"ok": False, "error": e if isinstance(e, str) else f"{e.__class__.__name__}: {e}"}


class VmShim:
    def __init__(self, h: Handover) -> None:
        self.h = h
        self.id = h.id
        self.d: str = h.state_dir
        self.tty = bool(h.tty)
        self.qemu_pid = int(h.qemu_pid)
        try:  # a pooled QEMU is not our child: its pid may be reused once it is gone, its pidfd never
            self.qemu_fd: int | None = os.pidfd_open(self.qemu_pid)
        except OSError:
            self.qemu_fd = None
        self.own_netns = bool(h.own_netns)
        self.nics: dict[str, dict[str, Any]] = h.nics
        self.next_nic = 0
        self.dns_server: str | None = h.dns_server
        self.max_vcpus = int(h.max_vcpus)
        self.cpuset_pinned = bool(h.cpuset_pinned)
        self.loop = Loop()
        self.agent: Conn | None = None
        self.routes: dict[int, Conn] = {}
        self.exec_owner: dict[str, Conn] = {}
        self.next_stream = 4
        self.outputs: dict[int, StreamToFd] = {}
        self.stdin_relay: FdToStream | None = None
        self.tty_slave: int | None = h.fds.get("tty")
        self.oom_killed = False
        self.stand_ins: Any = None
        self.status = statefile.read(h.state_dir)["status"]
        self.code = 255
        self.exiting = False
        self.helper_queue: list[Callable[[], None]] = []
        self.helper_busy = False
        self.net_timer: int | None = None
        self.net_adds = 0
        """net_add requests the agent has not answered yet; start waits for them (net_idle)."""
        self.net_idle: list[Callable[[], None]] = []
        self.late_network = bool(h.late_network)
        """No veth at create (Docker 26+ configures the netns after create): start wires it first."""
        self.oom_relay: list[Callable[[], None]] | None = None
        self.resources: dict[str, Any] = h.resources or {}
        """The spec's resources as updated since: what the host's cgroup limits derive from (limits.py)."""
        self.vm: dict[str, Any] = h.vm or {}

    # ---- start-up after the exec and the end ------------------------------------------------------
    def serve(self) -> None:
        for problem in self._host_limits(self.resources):
            log.warning(f"host cgroup limit not applied: {problem}")
        fds = self.h.fds
        self.agent = Conn(self.loop, socket.socket(fileno=fds["agent"]), self._on_agent_frame, "guest agent",
                          on_close=lambda: self._finish(255, "the guest agent's channel closed", vm_alive=False))
        send = self.agent.send
        if self.tty_slave is not None:
            self.outputs = {INIT_STREAMS["stdout"]: StreamToFd(self.loop, os.dup(self.tty_slave),
                                                               INIT_STREAMS["stdout"], send)}
            self.stdin_relay = FdToStream(self.loop, os.dup(self.tty_slave), INIT_STREAMS["stdin"], send)
        else:
            self.outputs = {INIT_STREAMS["stdout"]: StreamToFd(self.loop, 1, INIT_STREAMS["stdout"], send),
                            INIT_STREAMS["stderr"]: StreamToFd(self.loop, 2, INIT_STREAMS["stderr"], send)}
            self.stdin_relay = FdToStream(self.loop, 0, INIT_STREAMS["stdin"], send)
        self.agent.feed(self.h.unread)
        for kind, ident, payload in self.h.early:
            self._on_agent_frame(kind, ident, payload)
        self.server = socket.socket(fileno=fds["server"])
        self.server.setblocking(False)
        self.loop.add_reader(self.server.fileno(), self._accept)
        self._signals()
        self._watch_qemu()
        if self.own_netns:
            self._watch_network()
        if self.h.restored:
            self.stdin_relay.start()
        self.loop.run()

    def _finish(self, code: int, why: str | None = None, vm_alive: bool = True) -> None:
        """The container is done: flush its output (bounded), record the exit, stop the VM, leave the loop.
        A dead VM sends nothing more: what arrived is written out and the streams end at once."""
        if self.exiting:
            return
        self.exiting = True
        self.code = code
        if why:
            log.error(why)
        log.trace(f"exit {code}")
        if self.stdin_relay is not None:
            self.stdin_relay.stop()
        if not vm_alive:
            for out in self.outputs.values():
                out.end()
        waiting = [o for o in self.outputs.values() if not o.flushed]

        def done() -> None:
            if any(not o.flushed for o in waiting) and not timed_out[0]:
                return
            if self.stand_ins is not None:
                self.stand_ins.stop_all()
            statefile.update(self.d, status=STOPPED, exit_code=code, oom_killed=self.oom_killed)
            self._stop_vm()
            self.loop.stop()

        timed_out = [False]
        for o in waiting:
            o.when_flushed(done)

        def expire() -> None:
            timed_out[0] = True
            done()

        self.loop.call_later(DRAIN_S, expire)
        if not waiting:
            done()

    def _stop_vm(self) -> None:
        """The VM ends the one way (stop.py: QMP quit, SIGTERM, SIGKILL; bounded) and is reaped. Without a pidfd
        it has ended and been reaped already (_watch_qemu), or was gone at start."""
        if self.qemu_fd is None:
            return
        from runtime.runvm.vm.stop import stop

        log.trace(f"vm {stop(self.qemu_pid, self.h.qmp_sock, pidfd=self.qemu_fd)}")

    @property
    def conn(self) -> Conn:
        """The agent's channel, once serve() has opened it (every handler runs after that)."""
        assert self.agent is not None
        return self.agent

    def _set_status(self, status: str, **extra: Any) -> None:
        self.status = status
        statefile.update(self.d, status=status, **extra)

    # ---- the agent's frames -------------------------------------------------------------------------
    def _on_agent_frame(self, kind: int, ident: int, payload: bytes) -> None:
        if kind == frames.REQUEST:
            self._agent_request(ident, json.loads(payload))
        elif kind == frames.EVENT:
            self._on_event(json.loads(payload))
        elif kind in (frames.DATA, frames.EOF):
            out = self.outputs.get(ident)
            if out is not None:
                out.data(payload) if kind == frames.DATA else out.end()
            elif ident in self.routes:
                self.routes[ident].send(frames.frame(kind, ident, payload))
        elif kind == frames.CREDIT:
            if self.stdin_relay is not None and ident == INIT_STREAMS["stdin"]:
                self.stdin_relay.grant(frames.credit_amount(payload))
            elif ident in self.routes:
                self.routes[ident].send(frames.frame(kind, ident, payload))

    def _on_event(self, ev: dict[str, Any]) -> None:
        kind = ev.get("event")
        if kind == "exit":
            key = ev.get("process")
            if key == "init":
                code = frames.exit_code(ev.get("status") or {})
                if self.oom_relay is not None:  # Docker must see the OOM before the exit, as with runc
                    def finish_later(code: int = code) -> None:
                        self.loop.call_later(OOM_GRACE_S, lambda: self._finish(code))

                    self.oom_relay.append(finish_later)
                else:
                    self._finish(code)
            else:
                owner = self.exec_owner.pop(str(key), None)
                if owner is not None:
                    owner.send(frames.message(frames.EVENT, 0, ev))
        elif kind == "gone":  # a process a docker-top stand-in stands for (op_watch)
            if self.stand_ins is not None:
                self.stand_ins.ended(int(ev.get("pid") or 0), ev.get("status"))
        elif kind == "oom":
            self.oom_killed = True
            log.warning("container OOM-killed a process in the guest")
            self._relay_oom()

    def _relay_oom(self) -> None:
        """containerd watches the container's memory cgroup on the host: make it see a real OOM there."""
        if self.oom_relay is not None:
            return
        self.oom_relay = []
        pid = os.fork()
        if pid == 0:
            try:
                from runtime.runvm import oom

                oom.signal_host_cgroup(self.h.cgroup_path, protect=(self.qemu_pid,))
            finally:
                os._exit(0)
        self._reap_later(pid, self._oom_relayed)

    def _oom_relayed(self) -> None:
        waiting, self.oom_relay = self.oom_relay or [], None
        for cb in waiting:
            cb()

    def _reap_later(self, pid: int, then: Callable[[], None] | None = None) -> None:
        fd = os.pidfd_open(pid)

        def gone() -> None:
            self.loop.remove_reader(fd)
            os.close(fd)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
            if then is not None:
                then()

        self.loop.add_reader(fd, gone)

    def _agent_request(self, ident: int, req: dict[str, Any]) -> None:
        """Requests from the guest: only DNS queries for Docker's embedded server, asked from our netns."""
        if req.get("op") != "dns" or not self.dns_server:
            self.conn.respond(ident, _error(f"unknown guest request {req.get('op')!r}"))
            return
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setblocking(False)
        fd = s.fileno()
        state: dict[str, Any] = {}

        def finish(reply: dict[str, Any]) -> None:
            self.loop.remove_reader(fd)
            self.loop.cancel(state.get("timer"))
            s.close()
            self.conn.respond(ident, reply)

        def readable() -> None:
            with contextlib.suppress(BlockingIOError):
                finish({"ok": True, "data": base64.b64encode(s.recv(65535)).decode()})

        try:
            s.connect((self.dns_server, 53))
            s.send(base64.b64decode(req["data"]))
        except OSError as e:
            s.close()
            self.conn.respond(ident, _error(e))
            return
        self.loop.add_reader(fd, readable)
        state["timer"] = self.loop.call_later(5.0, lambda: finish(_error("no answer from Docker's DNS")))

    # ---- control socket ---------------------------------------------------------------------------
    def _accept(self) -> None:
        try:
            sock, _ = self.server.accept()
        except BlockingIOError:
            return
        holder: list[Conn] = []

        def on_frame(kind: int, ident: int, payload: bytes) -> None:
            client = holder[0]
            if kind == frames.REQUEST:
                self._control(client, ident, json.loads(payload))
            elif kind in (frames.DATA, frames.EOF, frames.CREDIT) and self.routes.get(ident) is client:
                self.conn.send(frames.frame(kind, ident, payload))

        def closed() -> None:
            for sid in [s for s, owner in self.routes.items() if owner is holder[0]]:
                del self.routes[sid]

        holder.append(Conn(self.loop, sock, on_frame, "control client", on_close=closed))

    def _control(self, client: Conn, ident: int, req: dict[str, Any]) -> None:
        def respond(reply: dict[str, Any]) -> None:
            client.respond(ident, reply if "ok" in reply else {"ok": True, **reply})

        fn = getattr(self, "op_" + str(req.get("op", "")).replace("-", "_"), None)
        if fn is None:
            respond(_error(f"unknown request {req.get('op')!r}"))
            return
        try:
            fn(req, client, respond)
        except Exception as e:
            import traceback

            log.error(f"shim request {req.get('op')} failed: {traceback.format_exc()}")
            respond(_error(e))

    def _ask(self, body: dict[str, Any], then: Callable[[dict[str, Any]], None], respond: Respond,
             timeout: float = 30) -> None:
        """An agent request whose failure is the client's answer and whose success continues with then()."""
        def got(reply: dict[str, Any]) -> None:
            if reply.get("ok"):
                then(reply)
            else:
                respond(_error(reply.get("error") or f"{body.get('op')} failed"))

        self.conn.request(body, got, timeout=timeout)

    def op_start(self, req: dict[str, Any], client: Conn, respond: Respond) -> None:
        if self.status != CREATED:
            respond(_error(f"cannot start a container that is {self.status}"))
            return

        def started(_reply: dict[str, Any]) -> None:
            self._set_status(RUNNING)
            if self.stdin_relay is not None:
                self.stdin_relay.start()
            respond({})

        log.trace("start req")
        if not self.late_network:
            self._ask({"op": "start"}, started, respond)
            return
        self.late_network = False
        self._reconcile_network(lambda: self._late_dns(lambda: self._ask({"op": "start"}, started, respond)),
                                first=True)

    def _late_dns(self, then: Callable[[], None]) -> None:
        """The embedded DNS server that create could not see yet (handover.resolv_name)."""
        fd, name = self.h.fds.get("resolv_dir"), self.h.resolv_name
        if self.dns_server or fd is None or not name:
            then()
            return
        from runtime.runvm.net import resolv

        try:
            with open(os.open(name, os.O_RDONLY | os.O_CLOEXEC, dir_fd=fd)) as f:
                self.dns_server = resolv.nameserver_on_loopback(f.read())
        except OSError as e:
            log.warning(f"resolv.conf not read at start: {e}")
        if not self.dns_server:
            then()
            return

        def relayed(reply: dict[str, Any]) -> None:
            if not reply.get("ok"):
                log.warning(f"embedded DNS relay not started: {reply.get('error')}")
            then()

        self.conn.request({"op": "dns_relay", "address": self.dns_server}, relayed, timeout=30)

    def op_kill(self, req: dict[str, Any], client: Conn, respond: Respond) -> None:
        if self.status == STOPPED:
            respond(_error("container not running"))
            return
        sig = int(req["signal"])
        if self.status == PAUSED and sig == signal.SIGKILL:  # a frozen process cannot die until thawed
            self._ask({"op": "kill", "signal": sig, "all": True},
                      lambda _r: self._ask({"op": "resume"}, lambda _r2: respond({}), respond), respond)
            return
        self._ask({"op": "kill", "signal": sig, "all": bool(req.get("all")), "process": req.get("process")},
                  lambda _r: respond({}), respond)

    def op_pause(self, req: dict[str, Any], client: Conn, respond: Respond) -> None:
        if self.status != RUNNING:
            respond(_error(f"container not running ({self.status})"))
            return
        def paused(_r: dict[str, Any]) -> None:
            self._set_status(PAUSED)
            respond({})

        self._ask({"op": "pause"}, paused, respond)

    def op_resume(self, req: dict[str, Any], client: Conn, respond: Respond) -> None:
        if self.status != PAUSED:
            respond(_error("container not paused"))
            return
        def resumed(_r: dict[str, Any]) -> None:
            self._set_status(RUNNING)
            respond({})

        self._ask({"op": "resume"}, resumed, respond)

    def op_ps(self, req: dict[str, Any], client: Conn, respond: Respond) -> None:
        def listed(reply: dict[str, Any]) -> None:
            from runtime.runvm.shim.top import StandIns

            processes = reply.get("processes") or []
            if self.stand_ins is None:
                self.stand_ins = StandIns(STAND_IN_DIR, self.loop, self._signal_guest_pid, self._watch_guest_pids)
            respond({"processes": processes, "host_pids": self.stand_ins.sync(processes)})

        self._ask({"op": "ps"}, listed, respond)

    def _signal_guest_pid(self, gpid: int, sig: int) -> None:
        """A docker-top stand-in received sig (top.py): the guest process gets it."""
        if self.agent is not None and self.status in (RUNNING, PAUSED, CREATED) and not self.exiting:
            log.trace(f"stand-in signal {sig} -> guest pid {gpid}")
            self.agent.request({"op": "kill", "pid": gpid, "signal": sig}, lambda _r: None)

    def _watch_guest_pids(self, pids: list[int]) -> None:
        def watching(reply: dict[str, Any]) -> None:
            for gpid in reply.get("gone") or []:
                if self.stand_ins is not None:
                    self.stand_ins.ended(int(gpid), None)

        if self.agent is not None:
            self.agent.request({"op": "watch", "pids": pids}, watching)

    def op_stats(self, req: dict[str, Any], client: Conn, respond: Respond) -> None:
        self._ask({"op": "stats"}, lambda r: respond({"stats": r.get("stats")}), respond)

    def op_state(self, req: dict[str, Any], client: Conn, respond: Respond) -> None:
        respond({"status": self.status, "boot": self.h.boot})

    def _host_limits(self, res: dict[str, Any], only_raised_from: dict[str, Any] | None = None) -> list[str]:
        """The host cgroup's limits for resources res (the spec's plus the VM's allowance): all of them, or only
        those that rise from what only_raised_from gives (a limit must never be lower on the host than in the
        guest: an update raises the host first and lowers it last)."""
        from runtime.runvm import cgroups, limits

        values = limits.host_limits(res, self.vm)
        if only_raised_from is not None:
            values = limits.raised(limits.host_limits(only_raised_from, self.vm), values)
        return cgroups.apply(self.h.cgroup_path, values) if values else []

    def op_update(self, req: dict[str, Any], client: Conn, respond: Respond) -> None:
        """The guest's cgroups get the update as given (runc's semantics: 0 leaves a value); the host's cgroup the
        resulting limits plus the VM's allowance, raised before the guest's and lowered after them."""
        from runtime.runvm import limits

        res = req.get("resources") or {}
        if (res.get("cpu") or {}).get("cpus"):
            self.cpuset_pinned = True
        merged = limits.merge(self.resources, res)

        def apply(warnings: list[str]) -> None:
            before = self.resources
            problems = self._host_limits(merged, only_raised_from=before)

            def updated(r: dict[str, Any]) -> None:
                self.resources = merged
                host = [f"host cgroup: {p}" for p in problems + self._host_limits(merged)]
                for w in host:
                    log.warning(w)
                respond({"warnings": warnings + (r.get("warnings") or []) + host})

            def failed(reply: dict[str, Any]) -> None:
                self._host_limits(before)
                respond(reply)

            self._ask({"op": "update", "resources": res}, updated, failed, timeout=60)

        def plugged(reply: dict[str, Any]) -> None:
            if not reply.get("ok"):
                respond(reply)
                return
            if reply.get("plugged_mib") is not None:
                self.vm = {**self.vm, "plugged_mib": int(reply["plugged_mib"])}
            online = resize.online_request(reply, self.cpuset_pinned)
            if online:
                self._ask(online, lambda _r: apply(reply.get("warnings") or []), respond)
            else:
                apply(reply.get("warnings") or [])

        if resize.cpus_needed(res) > 1 or resize.memory_needed_mib(res):
            self._helper("runtime.runvm.shim.qmp_helper",
                         {"op": "hotplug", "resources": res, "max_vcpus": self.max_vcpus}, plugged)
        else:
            apply([])

    def op_exec(self, req: dict[str, Any], client: Conn, respond: Respond) -> None:
        if self.status != RUNNING:
            respond(_error(f"cannot exec in a {self.status} container"))
            return
        base = self.next_stream
        self.next_stream += 3
        streams = {"stdin": base, "stdout": base + 1, "stderr": base + 2}
        for sid in streams.values():
            self.routes[sid] = client
        self.exec_owner[req["id"]] = client

        def done(reply: dict[str, Any]) -> None:
            if reply.get("ok"):
                respond({"pid": reply.get("pid"), "streams": streams})
                return
            for sid in streams.values():
                self.routes.pop(sid, None)
            self.exec_owner.pop(req["id"], None)
            respond(_error(reply.get("error") or "exec failed"))

        self.conn.request({"op": "exec", "id": req["id"], "process": req["process"], "streams": streams}, done)

    def op_exec_kill(self, req: dict[str, Any], client: Conn, respond: Respond) -> None:
        self.conn.request({"op": "kill", "signal": int(req["signal"]), "process": req["id"]},
                           lambda _r: respond({}))

    def op_resize(self, req: dict[str, Any], client: Conn, respond: Respond) -> None:
        self._ask({"op": "resize", "process": req.get("process"), "rows": req["rows"], "cols": req["cols"]},
                  lambda _r: respond({}), respond)

    def op_checkpoint(self, req: dict[str, Any], client: Conn, respond: Respond) -> None:
        if self.status not in (RUNNING, PAUSED):
            respond(_error(f"cannot checkpoint a container that is {self.status}"))
            return
        from pathlib import Path  # only here: pathlib costs every idle shim ~0.9 MB

        from runtime.runvm.shim import images

        image_path, share = Path(req["image_path"]), Path(self.h.share_dir or f"{self.d}/share")
        images.bind(share, image_path)

        def dumped(reply: dict[str, Any]) -> None:
            images.unbind(share)
            if not reply.get("ok"):
                respond(_error(reply.get("error") or "checkpoint failed"))
                return
            (image_path / "runvm.json").write_text(json.dumps({"tty": self.tty, "info": reply.get("info") or {}}))
            respond({})

        self.conn.request({"op": "checkpoint", "images": IMAGES_DIR, "leave_running": bool(req.get("leave_running"))},
                           dumped, timeout=300)

    # ---- helpers for the rare operations (one at a time: QMP takes one client) ----------------------
    def _helper(self, module: str, body: dict[str, Any], done: Callable[[dict[str, Any]], None]) -> None:
        def run() -> None:
            import subprocess

            self.helper_busy = True
            proc = subprocess.Popen([sys.executable, "-m", module], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    stderr=subprocess.DEVNULL, close_fds=True,
                                    env={**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)})
            assert proc.stdin is not None and proc.stdout is not None
            proc.stdin.write(json.dumps({"qmp_sock": self.h.qmp_sock, **body}).encode())
            proc.stdin.close()
            out = proc.stdout
            fd = out.fileno()
            os.set_blocking(fd, False)
            chunks: list[bytes] = []

            def readable() -> None:
                try:
                    chunk = os.read(fd, 65536)
                except BlockingIOError:
                    return
                if chunk:
                    chunks.append(chunk)
                    return
                self.loop.remove_reader(fd)
                out.close()
                proc.wait()
                try:
                    reply = json.loads(b"".join(chunks) or b"{}")
                except ValueError:
                    reply = {}
                if "ok" not in reply:
                    reply = _error(f"{module} failed")
                self.helper_busy = False
                done(reply)
                if self.helper_queue:
                    self.helper_queue.pop(0)()

            self.loop.add_reader(fd, readable)

        if self.helper_busy:
            self.helper_queue.append(run)
        else:
            run()

    # ---- signals, the VM, the network ---------------------------------------------------------------
    def _signals(self) -> None:
        for sig in FORWARDED_SIGNALS:
            with contextlib.suppress(OSError, RuntimeError, ValueError):
                self.loop.add_signal_handler(int(sig), self._forward_signal)
        if self.tty:
            self.loop.add_signal_handler(signal.SIGWINCH, self._winch)

    def _forward_signal(self, sig: int) -> None:
        if self.agent is not None and self.status in (RUNNING, PAUSED, CREATED):
            self.agent.request({"op": "kill", "signal": sig}, lambda _r: None)

    def _winch(self, _sig: int) -> None:
        if self.tty_slave is not None and self.agent is not None:
            rows, cols = console.window_size(self.tty_slave)
            self.agent.request({"op": "resize", "process": "init", "rows": rows, "cols": cols}, lambda _r: None)

    def _watch_qemu(self) -> None:
        fd = self.qemu_fd
        if fd is None:
            raise ProcessLookupError(f"the container's VM (QEMU {self.qemu_pid}) is gone")  # as pidfd_open would

        def gone() -> None:
            self.loop.remove_reader(fd)
            os.close(fd)
            self.qemu_fd = None
            try:
                _, status = os.waitpid(self.qemu_pid, 0)
                killed = os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
            except ChildProcessError:
                status, killed = -1, False
            self._finish(128 + signal.SIGKILL if killed else 255,
                         f"the container's VM stopped unexpectedly (QEMU wait status {status})", vm_alive=False)

        self.loop.add_reader(fd, gone)

    def _watch_network(self) -> None:
        """`docker network connect/disconnect`: netlink wakes us, a helper reconciles NICs with the veths."""
        from runtime.runvm.net import watch as netwatch

        sock = netwatch.subscribe()
        self.next_nic = sum(1 for n in self.nics.values() if n.get("device") != "nic0")

        def readable() -> None:
            if netwatch.drain(sock):
                self.loop.cancel(self.net_timer)
                self.net_timer = self.loop.call_later(NET_DEBOUNCE_S, reconcile)

        def reconcile() -> None:
            self.net_timer = None
            self._reconcile_network(lambda: None, first=self.late_network)

        self.loop.add_reader(sock.fileno(), readable)

    def _reconcile_network(self, then: Callable[[], None], first: bool = False) -> None:
        """One plumbing pass (helpers run one at a time); then() once the agent has configured every NIC it
        was asked to, this pass's and any earlier one's. first: the VM's own NIC may take the first veth."""
        from runtime.runvm.shim.constants import TAP

        def applied(reply: dict[str, Any]) -> None:
            if not reply.get("ok"):
                log.warning(f"network change not applied: {reply.get('error')}")
            else:
                self.nics, self.next_nic = reply["nics"], reply["next_nic"]
                for mac in reply.get("take_down") or []:
                    self.conn.request({"op": "net_remove", "mac": mac}, lambda _r: None)
                for nic in reply.get("configure") or []:
                    self.net_adds += 1
                    self.conn.request({"op": "net_add", "nic": nic}, net_added, timeout=30)
            if self.net_adds:
                self.net_idle.append(then)
            else:
                then()

        def net_added(reply: dict[str, Any]) -> None:
            if not reply.get("ok"):
                log.warning(f"guest NIC not configured: {reply.get('error')}")
            self.net_adds -= 1
            if not self.net_adds:
                waiting, self.net_idle = self.net_idle, []
                for w in waiting:
                    w()

        body: dict[str, Any] = {"nics": self.nics, "next_nic": self.next_nic}
        if first:
            body["first_tap"] = TAP
        self._helper("runtime.runvm.shim.netconnect", body, applied)
