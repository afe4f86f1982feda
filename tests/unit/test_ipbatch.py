"""The agent's resident iproute2, driven on this host with read-only commands: batches end at their sentinel,
errors carry iproute2's words, and a process that died is replaced."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest

from runtime.agent.ipbatch import IpBatch

IP = shutil.which("ip") or "/usr/sbin/ip"
pytestmark = pytest.mark.skipif(not os.path.exists(IP), reason="iproute2 is not installed")


@pytest.fixture
def ipb() -> Iterator[IpBatch]:
    b = IpBatch(IP)
    yield b
    b.close()


def test_batches_reuse_one_process(ipb: IpBatch) -> None:
    ipb.run(["link show dev lo"])
    pid = ipb.pid
    ipb.run(["link show dev lo", "addr show dev lo"])
    assert ipb.pid == pid != 0


def test_an_error_names_the_failing_command_and_the_next_batch_is_clean(ipb: IpBatch) -> None:
    bad = "addr add 192.0.2.1/24 dev nosuchdev0"
    with pytest.raises(OSError, match=rf'^ip: Cannot find device "nosuchdev0" \(in: {bad}\)$'):
        ipb.run(["link show dev lo", bad, "link show dev lo"])
    ipb.run(["link show dev lo"])  # no error left over from the last batch


def test_a_dead_process_is_replaced(ipb: IpBatch) -> None:
    ipb.run(["link show dev lo"])
    first = ipb.pid
    os.kill(first, 9)
    os.waitpid(first, 0)
    ipb.pid = 0  # reaped here, as the agent's reaper would; its pidfd still names the dead process
    ipb.run(["link show dev lo"])
    assert ipb.pid not in (0, first)


def test_close_leaves_no_process(ipb: IpBatch) -> None:
    ipb.run(["link show dev lo"])
    pid = ipb.pid
    ipb.close()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
