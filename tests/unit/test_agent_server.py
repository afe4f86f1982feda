"""The agent's request dispatch, its requests to the host, a host end going away, and a process's stdio and exit,
on the host: the Agent serves a socketpair instead of the virtio-serial port, a runtime.wire Connection is the
host. Nothing here mounts, powers off or sets the clock (those libc calls are replaced)."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest

from runtime.agent import entropy, libc, server
from runtime.agent.process import Spawned, Stdio
from runtime.wire import frames
from runtime.wire.connection import Connection, Frame, Reply


@pytest.fixture(autouse=True)
def harmless(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[str, tuple[Any, ...]]]]:
    """The agent is PID 1 of a VM; on this host it must not power off, mount, or set the clock."""
    calls: list[tuple[str, tuple[Any, ...]]] = []
    for mod, name in ((libc, "power_off"), (libc, "mount"), (libc, "umount"), (entropy, "set_clock"),
                      (entropy, "reseed")):
        monkeypatch.setattr(mod, name, lambda *a, _n=name: calls.append((_n, a)))
    yield calls


class Host:
    """The host's end of the channel."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        sock.setblocking(False)
        self.loop = asyncio.get_running_loop()
        self.wire = Connection("guest agent")
        self.frames: list[Frame] = []

    async def send(self, data: bytes) -> None:
        await self.loop.sock_sendall(self.sock, data)

    async def pump(self, done: Callable[[], bool], timeout: float = 5) -> None:
        """Receive until done() (or fail after timeout)."""
        async def run() -> None:
            while not done():
                data = await self.loop.sock_recv(self.sock, 1 << 16)
                assert data, "the agent closed the channel"
                for ev in self.wire.receive(data):
                    if isinstance(ev, Reply):
                        ev.token.set_result(ev.body)
                    else:
                        self.frames.append(ev)
        await asyncio.wait_for(run(), timeout)

    async def ask(self, body: dict[str, Any]) -> dict[str, Any]:
        fut: asyncio.Future[dict[str, Any]] = self.loop.create_future()
        _ident, data = self.wire.request(body, fut)
        await self.send(data)
        await self.pump(fut.done)
        return fut.result()

    def kinds(self, stream: int) -> list[tuple[int, bytes]]:
        return [(f.kind, f.payload) for f in self.frames if f.ident == stream and f.kind != frames.EVENT]

    def events(self) -> list[dict[str, Any]]:
        return [f.body() for f in self.frames if f.kind == frames.EVENT]


def run(scenario: Callable[[server.Agent, Host], Awaitable[None]]) -> None:
    ours, theirs = socket.socketpair()

    async def main() -> None:
        agent = server.Agent(ours.fileno())
        await scenario(agent, Host(theirs))

    try:
        asyncio.run(main())
    finally:
        ours.close()
        theirs.close()


def test_ping_and_unknown_requests() -> None:
    async def scenario(agent: server.Agent, host: Host) -> None:
        pong = await host.ask({"op": "ping"})
        assert pong["ok"] and pong["version"] == server.VERSION and pong["uptime"] > 0
        assert await host.ask({"op": "nope"}) == {"ok": False, "error": "unknown request 'nope'"}

    run(scenario)


def test_requests_without_a_container_say_so() -> None:
    async def scenario(agent: server.Agent, host: Host) -> None:
        expected: list[tuple[dict[str, Any], str]] = [
            ({"op": "pause"}, "no container"), ({"op": "resume"}, "no container"), ({"op": "update"}, "no container"),
            ({"op": "start"}, "no container created"), ({"op": "checkpoint"}, "container is not running"),
            ({"op": "exec", "id": "x", "process": {}}, "container is not running"),
            ({"op": "kill", "signal": 15}, "no process 'init' in this container"),
            ({"op": "kill", "signal": 15, "all": True}, "no container"),
            ({"op": "kill", "signal": 15, "pid": 4}, "no process 4 in this container"),
        ]
        for body, error in expected:
            assert await host.ask(body) == {"ok": False, "error": error}
        assert await host.ask({"op": "stats"}) == {"ok": True, "stats": {}}
        assert await host.ask({"op": "ps"}) == {"ok": True, "processes": []}
        assert await host.ask({"op": "watch", "pids": [1, 2]}) == {"ok": True, "gone": [1, 2]}

    run(scenario)


def test_an_unexpected_failure_is_the_reply_not_the_loop_s() -> None:
    async def scenario(agent: server.Agent, host: Host) -> None:
        reply = await host.ask({"op": "kill"})  # no "signal"
        assert reply["ok"] is False and reply["error"] == "KeyError: 'signal'" and "Traceback" in reply["trace"]
        assert (await host.ask({"op": "ping"}))["ok"]

    run(scenario)


def test_prepare_reseeds_and_sets_the_clock(harmless: list[tuple[str, tuple[Any, ...]]]) -> None:
    async def scenario(agent: server.Agent, host: Host) -> None:
        assert await host.ask({"op": "prepare", "seed": "AAEC", "time_ns": 123}) == {"ok": True}
        assert harmless == [("reseed", (b"\0\1\2",)), ("set_clock", (123,))]

    run(scenario)


def test_the_agent_asks_the_host_and_gets_its_answer_or_a_timeout() -> None:
    async def scenario(agent: server.Agent, host: Host) -> None:
        asking = asyncio.get_running_loop().create_task(agent.chan.ask({"op": "dns", "data": "cXVlcnk="}))
        await host.pump(lambda: bool(host.frames))
        [req] = host.frames
        assert req.kind == frames.REQUEST and req.body() == {"op": "dns", "data": "cXVlcnk="}
        await host.send(host.wire.reply(req.ident, {"ok": True, "data": "YW5zd2Vy"}))
        assert await asyncio.wait_for(asking, 5) == {"ok": True, "data": "YW5zd2Vy"}
        late = await agent.chan.ask({"op": "dns"}, timeout=0.05)
        assert late == {"ok": False, "error": "host: no answer to dns in 0.05s"}

    run(scenario)


def test_a_held_vm_whose_host_end_goes_away_fails_its_requests_and_powers_off(
        harmless: list[tuple[str, tuple[Any, ...]]]) -> None:
    async def scenario(agent: server.Agent, host: Host) -> None:
        assert await host.ask({"op": "hold"}) == {"ok": True}
        asking = asyncio.get_running_loop().create_task(agent.chan.ask({"op": "dns"}))
        await host.pump(lambda: bool(host.frames))
        host.sock.shutdown(socket.SHUT_RDWR)
        assert await asyncio.wait_for(asking, 5) == {"ok": False, "error": "host closed"}
        assert ("power_off", ()) in harmless

    run(scenario)


def test_a_reply_computed_across_a_reconnection_is_not_sent_to_the_new_host() -> None:
    async def scenario(agent: server.Agent, host: Host) -> None:
        old = agent.chan.session
        agent.chan.wire.reset()
        await agent.handle(77, b'{"op": "ping"}', old)
        await agent.handle(78, b'{"op": "ping"}', agent.chan.session)
        data = await asyncio.wait_for(asyncio.get_running_loop().sock_recv(host.sock, 1 << 16), 5)
        assert [ident for _k, ident, _p in frames.Decoder().feed(data)] == [78]

    run(scenario)


STREAMS = {"stdin": 10, "stdout": 11, "stderr": 12}


def _register(agent: server.Agent, pid: int, key: str = "p1") -> tuple[server.Proc, list[int]]:
    stdio = Stdio.pipes()
    in_r, out_w, err_w = stdio.child_fds
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    theirs.close()
    proc = agent._register(key, Spawned(pid, ours), stdio, STREAMS)
    return proc, [in_r, out_w, err_w]


def test_a_process_s_stdio_and_exit_reach_the_host_in_order() -> None:
    async def scenario(agent: server.Agent, host: Host) -> None:
        proc, (in_r, out_w, err_w) = _register(agent, 999_999)
        os.write(out_w, b"hello")
        os.write(err_w, b"oops")
        await host.send(frames.frame(frames.DATA, 10, b"input") + frames.frame(frames.EOF, 10))
        await host.pump(lambda: len(host.frames) >= 3)
        assert os.read(in_r, 100) == b"input"
        assert os.read(in_r, 100) == b""  # EOF: the agent closed the pipe's write end
        os.close(in_r)
        assert (frames.DATA, b"hello") in host.kinds(11) and (frames.DATA, b"oops") in host.kinds(12)
        assert (frames.CREDIT, frames.CREDIT_FMT.pack(5)) in host.kinds(10)
        proc.exited({"code": 3})
        assert host.events() == []  # not before its output ended
        os.close(out_w)
        os.close(err_w)
        await host.pump(lambda: bool(host.events()))
        assert host.kinds(11)[-1] == (frames.EOF, b"") and host.kinds(12)[-1] == (frames.EOF, b"")
        assert host.events() == [{"event": "exit", "process": "p1", "pid": 999_999, "status": {"code": 3}}]
        assert frames.exit_code(host.events()[0]["status"]) == 3

    run(scenario)


def test_an_exit_reaped_before_the_process_was_registered_is_reported() -> None:
    async def scenario(agent: server.Agent, host: Host) -> None:
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(w)
            os.read(r, 1)
            os._exit(7)
        os.close(r)
        os.close(w)  # the child exits now; SIGCHLD reaps it before anyone registered it
        await asyncio.sleep(0.3)
        assert agent.unclaimed.get(pid) == {"code": 7}
        _proc, (in_r, out_w, err_w) = _register(agent, pid, "late")
        for fd in (in_r, out_w, err_w):
            os.close(fd)
        await host.pump(lambda: bool(host.events()))
        assert host.events() == [{"event": "exit", "process": "late", "pid": pid, "status": {"code": 7}}]
        assert pid not in agent.unclaimed

    run(scenario)


def test_a_registered_process_s_exit_is_reaped_with_its_signal() -> None:
    async def scenario(agent: server.Agent, host: Host) -> None:
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(w)
            os.read(r, 1)
            os.kill(os.getpid(), 9)
        os.close(r)
        _proc, (in_r, out_w, err_w) = _register(agent, pid)
        for fd in (in_r, out_w, err_w):
            os.close(fd)
        os.close(w)
        await host.pump(lambda: bool(host.events()))
        [ev] = host.events()
        assert ev["status"] == {"signal": 9} and frames.exit_code(ev["status"]) == 137

    run(scenario)


def test_ps_lists_the_container_s_processes() -> None:
    class OneProcess:
        def pids(self) -> list[int]:
            return [os.getpid()]

    async def scenario(agent: server.Agent, host: Host) -> None:
        agent.cgroup = OneProcess()  # type: ignore[assignment]
        [me] = (await host.ask({"op": "ps"}))["processes"]
        assert me["pid"] == os.getpid() and me["ppid"] == os.getppid() and me["uid"] == os.getuid()
        assert me["args"][0].endswith(("python", "python3", "pytest")) or "python" in me["args"][0]

    run(scenario)
