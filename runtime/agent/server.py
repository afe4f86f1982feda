"""The agent's requests: create/start/exec/kill/resize/ps/update/pause/resume/stats/net, and process exits."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import signal
import time
import traceback
from collections import OrderedDict
from typing import Any

from runtime.agent import cgroups, entropy, signals
from runtime.agent.channel import Channel, InStream, OutStream
from runtime.agent.process import (
    ProcessError,
    Spawned,
    Stdio,
    discard_waiting,
    prefork_init,
    release,
    set_winsize,
    start_exec,
    start_init,
    waiting_pid,
)
from runtime.wire import frames

VERSION = "1"
SHARE_TAG = "share"
SHARE_DIR = "/run/share"
EXIT_DRAIN_S = 2.0
"""After a process exits, how long its output may stay open (a background child holding the pipe)."""


class Proc:
    def __init__(self, agent: Agent, key: str, spawned: Spawned, outs: list[OutStream], stdin: InStream | None,
                 tty_master: int | None) -> None:
        self.agent, self.key, self.pid = agent, key, spawned.pid
        self.spawned = spawned
        self.outs, self.stdin, self.tty_master = outs, stdin, tty_master
        self.status: dict[str, int] | None = None
        self.reported = False

    def output_done(self) -> None:
        self.maybe_report()

    def stdio_description(self) -> dict[str, Any]:
        """What a checkpoint must record to reconnect the process's stdio on restore."""
        return {"tty": self.tty_master is not None, "pid": self.pid}

    def exited(self, status: dict[str, int]) -> None:
        self.status = status
        if self.stdin is not None:
            self.stdin.close()
        self.agent.loop.call_later(EXIT_DRAIN_S, self._force_finish)
        self.maybe_report()

    def _force_finish(self) -> None:
        for out in self.outs:
            out.drain_and_finish()

    def maybe_report(self) -> None:
        if self.reported or self.status is None or not all(o.done for o in self.outs):
            return
        self.reported = True
        if self.tty_master is not None:
            with contextlib.suppress(OSError):
                os.close(self.tty_master)
            self.tty_master = None
        self.agent.event({"event": "exit", "process": self.key, "pid": self.pid, "status": self.status})


class Agent:
    def __init__(self, port_fd: int) -> None:
        self.loop = asyncio.get_running_loop()
        self.chan = Channel(port_fd, self.on_frame, self.on_reset)
        self.procs: dict[str, Proc] = {}
        self.by_pid: dict[int, Proc] = {}
        self.unclaimed: OrderedDict[int, dict[str, int]] = OrderedDict()
        self.ins: dict[int, InStream] = {}
        self.outs: dict[int, OutStream] = {}
        self.cgroup: cgroups.AnyCgroup | None = None
        self.layout: list[dict[str, str]] = []
        self.init: Proc | None = None
        self.init_exec_at: float | None = None
        """When the init exec'd (time.monotonic()): a signal soon after may wait for its handler (signals.py)."""
        self.oom_fd: int | None = None
        self.loop.add_signal_handler(signal.SIGCHLD, self.reap)
        self.dns_transport: asyncio.DatagramTransport | None = None
        self.prepare_timings: dict[str, float] = {}
        self.held = False
        self.spare_holds_init = False
        """The template put the waiting init into the spare cgroup (see cgroups.Cgroup.make_spare)."""
        self.watched: dict[int, int] = {}
        """guest pid -> pidfd, for the host's docker-top stand-ins (op_watch)."""
        self.statuses: OrderedDict[int, dict[str, int]] = OrderedDict()
        """The last exit statuses the agent reaped, for a watched process reaped before its pidfd was read."""

    # ---- channel -------------------------------------------------------------------------------
    def event(self, body: dict[str, Any]) -> None:
        self.chan.event(body)

    def on_reset(self) -> None:
        """A new host end: streams of the old one are meaningless (only happens between template and clone).
        A held VM (see op_hold) has lost its owner instead: it powers off, so QEMU exits."""
        if self.held:
            from runtime.agent import libc

            libc.power_off()

    def on_frame(self, kind: int, ident: int, payload: bytes) -> None:
        """Everything from the host but the replies to ask(), which the channel hands to their waiters."""
        if kind == frames.REQUEST:
            self.loop.create_task(self.handle(ident, payload, self.chan.session))
        elif kind == frames.DATA and ident in self.ins:
            self.ins[ident].data(payload)
        elif kind == frames.EOF and ident in self.ins:
            self.ins[ident].end()
        elif kind == frames.CREDIT and ident in self.outs:
            self.outs[ident].grant(frames.credit_amount(payload))

    async def handle(self, ident: int, payload: bytes, session: int | None = None) -> None:
        """Run op_<op> and reply; any failure is the reply's error, never the loop's."""
        reply = await self.dispatch(payload)
        self.chan.reply(ident, reply, session)

    async def dispatch(self, payload: bytes) -> dict[str, Any]:
        """The reply to one request: {"ok": True, ...op's result} or {"ok": False, "error": ...}."""
        try:
            req = json.loads(payload)
            op = req.get("op", "")
            fn = getattr(self, "op_" + op.replace("-", "_"), None)
            if fn is None:
                raise ProcessError(f"unknown request {op!r}")
            result = fn(req)
            if asyncio.iscoroutine(result):
                result = await result
            reply = {"ok": True, **(result or {})}
        except ProcessError as e:
            reply = {"ok": False, "error": str(e)}
        except Exception as e:
            reply = {"ok": False, "error": f"{e.__class__.__name__}: {e}", "trace": traceback.format_exc()}
        return reply

    # ---- processes -----------------------------------------------------------------------------
    def reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            st = ({"signal": os.WTERMSIG(status)} if os.WIFSIGNALED(status)
                  else {"code": os.WEXITSTATUS(status)})
            self.statuses[pid] = st
            while len(self.statuses) > 512:
                self.statuses.popitem(last=False)
            proc = self.by_pid.pop(pid, None)
            if proc is not None:
                proc.exited(st)
            else:
                self.unclaimed[pid] = st
                while len(self.unclaimed) > 512:
                    self.unclaimed.popitem(last=False)

    def _register(self, key: str, spawned: Spawned, stdio: Stdio, streams: dict[str, int]) -> Proc:
        self.unclaimed.pop(spawned.helper, None)
        outs: list[OutStream] = []
        stdin: InStream | None = None
        proc_ref: list[Proc] = []

        def done() -> None:
            if proc_ref:
                proc_ref[0].output_done()

        if stdio.tty:
            master = spawned.pty_master
            assert master is not None
            outs.append(OutStream(self.chan, streams["stdout"], os.dup(master), done))
            stdin = InStream(self.chan, streams["stdin"], os.dup(master), closable=False)
        else:
            assert stdio.stdin is not None and stdio.stdout is not None and stdio.stderr is not None
            outs.append(OutStream(self.chan, streams["stdout"], stdio.stdout, done))
            outs.append(OutStream(self.chan, streams["stderr"], stdio.stderr, done))
            stdin = InStream(self.chan, streams["stdin"], stdio.stdin, closable=True)
        for o in outs:
            self.outs[o.stream] = o
        self.ins[stdin.stream] = stdin
        proc = Proc(self, key, spawned, outs, stdin, spawned.pty_master)
        proc_ref.append(proc)
        self.procs[key] = proc
        self.by_pid[spawned.pid] = proc
        if spawned.pid in self.unclaimed:
            proc.exited(self.unclaimed.pop(spawned.pid))
        return proc

    def _proc(self, key: str | None) -> Proc:
        key = key or "init"
        proc = self.procs.get(key)
        if proc is None:
            raise ProcessError(f"no process {key!r} in this container")
        return proc

    # ---- requests ------------------------------------------------------------------------------
    def op_ping(self, req: dict[str, Any]) -> dict[str, Any]:
        return {"version": VERSION, "uptime": time.clock_gettime(time.CLOCK_BOOTTIME)}

    async def op_warm(self, req: dict[str, Any]) -> dict[str, Any]:
        """Sent by the host once, before the template snapshot: do now what every container would pay for
        after its restore (the host's cgroup layout, the netlink socket), then freeze the heap for cheap forks."""
        import gc

        from runtime.agent import net

        self.layout = cgroups.mount_layout(req.get("cgroup_layout") or [])
        cgroups.make_spare(self.layout)
        # synchronize_rcu() is on the path of every netlink and mount change; a normal grace period under
        # emulation is tens of milliseconds, an expedited one a fraction of that
        with contextlib.suppress(OSError), open("/sys/kernel/rcu_expedited", "w") as f:
            f.write("1")
        await net.warm()
        gc.collect()
        gc.freeze()  # objects that exist now are never scanned again: forked children do not copy their pages
        prefork_init()
        self.spare_holds_init = cgroups.make_spare(self.layout, waiting_pid())
        return {"layout": self.layout}

    @staticmethod
    def _mount_share(options: str | None = None) -> None:
        from runtime.agent import libc

        if not os.path.ismount(SHARE_DIR):
            os.makedirs(SHARE_DIR, exist_ok=True)
            libc.mount(SHARE_TAG, SHARE_DIR, "9p", 0,
                       options or "trans=virtio,version=9p2000.L,msize=262144,cache=mmap,access=client")

    def op_mount_share(self, req: dict[str, Any]) -> dict[str, Any]:
        """A pooled spare mounts its (still empty) share before it is claimed: the template could not have it
        mounted (QEMU refuses to migrate a VM with a mounted 9p export), a spare is never migrated again, and
        what the claimant binds into the share later is looked up afresh (cache=mmap keeps no dentries)."""
        self._mount_share(req.get("share_options"))
        return {}

    def op_hold(self, req: dict[str, Any]) -> dict[str, Any]:
        """From now on this connection is the VM's lifeline. A pooled VM's QEMU is nobody's child on the host, so
        no PDEATHSIG can end it: its owner (the pool keeper, then the vm-shim it hands the connection to) holding
        the channel is what keeps it alive, even after a kill -9 of the owner."""
        self.held = True
        return {}

    def op_prepare(self, req: dict[str, Any]) -> dict[str, Any]:
        """First request after a restore: the host's clock and fresh randomness."""
        if req.get("seed"):
            entropy.reseed(base64.b64decode(req["seed"]))
        if req.get("time_ns"):
            entropy.set_clock(int(req["time_ns"]))
        return {}

    async def _prepare(self, req: dict[str, Any]) -> tuple[list[str], Stdio, dict[str, Any]]:
        """Everything a container needs before its processes exist: the share, NICs, cgroups."""
        if self.init is not None:
            raise ProcessError("this VM already has a container")
        from runtime.agent import net

        t = [time.monotonic()]
        self._mount_share(req.get("share_options"))
        t.append(time.monotonic())
        for nic in req.get("network") or []:
            await net.configure(nic)
        t.append(time.monotonic())
        if not self.layout:
            self.layout = cgroups.mount_layout(req.get("cgroup_layout") or [])
        t.append(time.monotonic())
        self.cgroup = cgroups.open_cgroup(self.layout, req.get("cgroup_path") or "/container")
        self.cgroup.create()
        warnings = self.cgroup.apply(((req["spec"].get("linux") or {}).get("resources")) or {})
        t.append(time.monotonic())
        self.prepare_timings = {n: round(b - a, 3) for n, a, b in zip(("9p", "nics", "cgmount", "cgroup"), t, t[1:],
                                                                       strict=False)}
        stdio = Stdio(True) if req.get("tty") else Stdio.pipes()
        cfg = {"spec": req["spec"], "rootfs": os.path.join(SHARE_DIR, req.get("rootfs", "rootfs")),
               "shares": {k: os.path.join(SHARE_DIR, v) for k, v in (req.get("shares") or {}).items()}}
        return warnings, stdio, cfg

    async def _after_start(self, req: dict[str, Any]) -> None:
        if self.cgroup is not None and "memory" in self.cgroup.dirs:
            with contextlib.suppress(OSError):
                self.oom_fd = self.cgroup.watch_oom()
                self.loop.add_reader(self.oom_fd, self._oom)

    async def op_create(self, req: dict[str, Any]) -> dict[str, Any]:
        t0 = time.monotonic()
        warnings, stdio, cfg = await self._prepare(req)
        assert self.cgroup is not None
        t1 = time.monotonic()
        spawned = start_init(cfg, stdio, self.cgroup, self.layout,
                             joined=self.cgroup.from_spare and self.spare_holds_init)
        t2 = time.monotonic()
        self.init = self._register("init", spawned, stdio, req["streams"])
        self.init_exec_at = None
        await self._after_start(req)
        t3 = time.monotonic()
        return {"pid": spawned.pid, "warnings": warnings, "timings": {
            "prepare": round(t1 - t0, 3), "init": round(t2 - t1, 3), "after": round(t3 - t2, 3),
            **self.prepare_timings}}

    async def op_restore(self, req: dict[str, Any]) -> dict[str, Any]:
        """A container brought back from a checkpoint (CRIU images under the share) instead of created."""
        from runtime.agent import checkpoint

        discard_waiting()
        warnings, stdio, cfg = await self._prepare(req)
        assert self.cgroup is not None
        spawned = checkpoint.restore(os.path.join(SHARE_DIR, req["images"]), cfg, stdio, self.cgroup, self.layout)
        self.init = self._register("init", spawned, stdio, req["streams"])
        self.init_exec_at = None
        await self._after_start(req)
        return {"pid": spawned.pid, "warnings": warnings}

    async def op_checkpoint(self, req: dict[str, Any]) -> dict[str, Any]:
        """CRIU dump of the container into the share; without leave_running the processes end with it."""
        from runtime.agent import checkpoint

        if self.init is None or self.init.status is not None or self.cgroup is None:
            raise ProcessError("container is not running")
        outs = self.init.outs

        def flush_output() -> None:
            for out in outs:
                out.flush_buffered()

        info = checkpoint.dump(self.init.pid, os.path.join(SHARE_DIR, req["images"]), self.cgroup,
                               bool(req.get("leave_running")), self.init.stdio_description(), flush_output)
        return {"info": info}

    async def op_dns_relay(self, req: dict[str, Any]) -> dict[str, Any]:
        if self.dns_transport is None:
            await self._start_dns_relay(req["address"])
        return {}

    async def _start_dns_relay(self, address: str) -> None:
        """Docker's embedded DNS answers on 127.0.0.11 inside the container's netns on the host; the guest's
        127.0.0.11 is its own loopback. Queries sent there are carried to the host, which asks Docker."""
        agent = self

        class Relay(asyncio.DatagramProtocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                agent.dns_transport = transport  # type: ignore[assignment]

            def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
                agent.loop.create_task(agent._dns(data, addr))

        await self.loop.create_datagram_endpoint(Relay, local_addr=(address, 53))

    async def _dns(self, data: bytes, addr: tuple[str, int]) -> None:
        with contextlib.suppress(Exception):
            reply = await self.chan.ask({"op": "dns", "data": base64.b64encode(data).decode()})
            if reply.get("ok") and self.dns_transport is not None:
                self.dns_transport.sendto(base64.b64decode(reply["data"]), addr)

    def _oom(self) -> None:
        try:
            os.read(self.oom_fd, 4096)  # type: ignore[arg-type]  # an eventfd's count (v1) or inotify events (v2)
        except BlockingIOError:
            return
        if self.cgroup is not None and not self.cgroup.woke_for_oom():
            return
        kills = self.cgroup.oom_kills() if self.cgroup else 0
        self.event({"event": "oom", "oom_kills": kills})

    def op_start(self, req: dict[str, Any]) -> dict[str, Any]:
        if self.init is None:
            raise ProcessError("no container created")
        release(self.init.spawned)
        self.init_exec_at = time.monotonic()
        return {"pid": self.init.pid}

    def op_exec(self, req: dict[str, Any]) -> dict[str, Any]:
        if self.init is None or self.init.status is not None or self.cgroup is None:
            raise ProcessError("container is not running")
        key = req["id"]
        if key in self.procs:
            raise ProcessError(f"exec id {key!r} already in use")
        proc = req["process"]
        stdio = Stdio(True) if proc.get("terminal") else Stdio.pipes()
        spawned = start_exec(self.init.pid, proc, stdio, self.cgroup)
        self._register(key, spawned, stdio, req["streams"])
        return {"pid": spawned.pid}

    async def op_kill(self, req: dict[str, Any]) -> dict[str, Any]:
        sig = int(req["signal"])
        if req.get("pid"):  # a signal a docker-top stand-in received on the host
            pid = int(req["pid"])
            if self.cgroup is None or pid not in self.cgroup.pids():
                raise ProcessError(f"no process {pid} in this container")
            try:
                await self._kill(pid, sig)
            except ProcessLookupError:
                raise ProcessError("process already finished") from None
            return {}
        if req.get("all"):
            if self.cgroup is None:
                raise ProcessError("no container")
            for pid in self.cgroup.pids():
                with contextlib.suppress(ProcessLookupError):
                    await self._kill(pid, sig)
            return {}
        proc = self._proc(req.get("process"))
        if proc.status is not None:
            raise ProcessError("process already finished")
        try:
            await self._kill(proc.pid, sig)
        except ProcessLookupError:
            raise ProcessError("process already finished") from None
        return {}

    async def _kill(self, pid: int, sig: int) -> None:
        if self.init is not None and pid == self.init.pid:
            await signals.send_to_init(pid, sig, self.init_exec_at)
        else:
            os.kill(pid, sig)

    def op_resize(self, req: dict[str, Any]) -> dict[str, Any]:
        proc = self._proc(req.get("process"))
        if proc.tty_master is not None:
            set_winsize(proc.tty_master, int(req["rows"]), int(req["cols"]))
        return {}

    def op_ps(self, req: dict[str, Any]) -> dict[str, Any]:
        if self.cgroup is None:
            return {"processes": []}
        out = []
        for pid in self.cgroup.pids():
            try:
                with open(f"/proc/{pid}/stat") as f:
                    stat = f.read()
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    args = [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
                uid = os.stat(f"/proc/{pid}").st_uid
            except OSError:
                continue
            comm = stat[stat.index("(") + 1: stat.rindex(")")]
            fields = stat[stat.rindex(")") + 2:].split()
            out.append({"pid": pid, "ppid": int(fields[1]), "state": fields[0], "comm": comm, "args": args,
                        "uid": uid, "start_ticks": int(fields[19])})
        return {"processes": out}

    def op_watch(self, req: dict[str, Any]) -> dict[str, Any]:
        """Report the end of each of these container processes (event "gone", with its exit status when it can
        still be read): the host ends their docker-top stand-ins with them. Returns those already gone."""
        members = set(self.cgroup.pids()) if self.cgroup is not None else set()
        gone = []
        for pid in (int(p) for p in req.get("pids") or []):
            if pid in self.watched:
                continue
            try:
                if pid not in members:
                    raise ProcessLookupError
                fd = os.pidfd_open(pid)
            except OSError:
                gone.append(pid)
                continue
            self.watched[pid] = fd
            self.loop.add_reader(fd, self._watched_ended, pid)
        return {"gone": gone}

    def _watched_ended(self, pid: int) -> None:
        fd = self.watched.pop(pid, None)
        if fd is None:
            return
        self.loop.remove_reader(fd)
        os.close(fd)
        self.event({"event": "gone", "pid": pid, "status": self._zombie_status(pid) or self.statuses.get(pid)})

    @staticmethod
    def _zombie_status(pid: int) -> dict[str, int] | None:
        """A process that ended but is not reaped yet: its wait status, from the last field of /proc/PID/stat."""
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            return None
        if not fields or fields[0] != "Z":
            return None
        status = int(fields[-1])
        return {"signal": os.WTERMSIG(status)} if os.WIFSIGNALED(status) else {"code": os.WEXITSTATUS(status)}

    def op_update(self, req: dict[str, Any]) -> dict[str, Any]:
        if self.cgroup is None:
            raise ProcessError("no container")
        return {"warnings": self.cgroup.apply(req.get("resources") or {})}

    def op_pause(self, req: dict[str, Any]) -> dict[str, Any]:
        if self.cgroup is None:
            raise ProcessError("no container")
        self.cgroup.freeze(True)
        return {}

    def op_resume(self, req: dict[str, Any]) -> dict[str, Any]:
        if self.cgroup is None:
            raise ProcessError("no container")
        self.cgroup.freeze(False)
        return {}

    def op_stats(self, req: dict[str, Any]) -> dict[str, Any]:
        return {"stats": self.cgroup.stats() if self.cgroup else {}}

    async def op_net_add(self, req: dict[str, Any]) -> dict[str, Any]:
        from runtime.agent import net

        return {"name": await net.configure(req["nic"])}

    def op_sysctls(self, req: dict[str, Any]) -> dict[str, Any]:
        from runtime.agent import net

        net.write_sysctls(req.get("values") or {})
        return {}

    async def op_net_remove(self, req: dict[str, Any]) -> dict[str, Any]:
        from runtime.agent import net

        await net.remove(req["mac"])
        return {}

    async def op_online_cpus(self, req: dict[str, Any]) -> dict[str, Any]:
        """After a CPU hot-plug: wait for the guest to see `want` CPUs, bring them online (no udev here), and
        widen the cpusets down to the container's (to its parents only, when the spec pinned it)."""
        base = "/sys/devices/system/cpu"
        want = int(req.get("want", 1))
        deadline = self.loop.time() + 15
        while True:
            present = [n for n in os.listdir(base) if n.startswith("cpu") and n[3:].isdigit()]
            if len(present) >= want or self.loop.time() > deadline:
                break
            await asyncio.sleep(0.02)
        onlined = []
        for name in sorted(present, key=lambda n: int(n[3:])):
            path = os.path.join(base, name, "online")
            if os.path.exists(path):
                with open(path) as f:
                    offline = f.read().strip() == "0"
                if offline:
                    with open(path, "w") as w:
                        w.write("1")
                    onlined.append(int(name[3:]))
        with open(os.path.join(base, "online")) as f:
            online = f.read().strip()
        if self.cgroup is not None:
            self.cgroup.widen_cpuset(online, ancestors_only=bool(req.get("pinned")))
        return {"onlined": onlined, "online": online}
