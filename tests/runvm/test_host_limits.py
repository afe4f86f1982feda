"""runvm's limits as the host sees them (issue 20): the container's host cgroup (linux.cgroupsPath, holding the
vm-shim and QEMU) carries the spec's limits plus the VM's allowance (runtime/runvm/limits.py), `docker stats`
reads them, `docker update` changes host and guest together, a `docker top` PID is a stand-in that forwards
signals to its guest process and ends with it, and `docker rm -f` leaves nothing of the container on the host.
Everything is read on the host directly (harness/hostcgroup.py) or inside the guest with `docker exec`."""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import subprocess
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import docker.errors
import psutil
import pytest

from harness import hostcgroup
from harness.waiting import wait_for
from runtime.runvm import cgroups, limits
from runtime.runvm.shim import top as top_module
from runtime.runvm.vm import qemu
from tests.runvm.conftest import CGROUP, DOCKER_ROOT, IMAGE, docker_cli, leftovers, wait_log

pytestmark = pytest.mark.docker
MiB = 1 << 20
STAND_IN_DIR = Path("/run/runvm-stand-ins")
LABEL = {"vmparity.test": "runvm-host-limits"}
"""Not conftest's label: another session of runvm's tests removes every container carrying that one when it starts
and ends; this module removes its own (own_containers)."""
TRAP_SCRIPT = (
    'trap "echo usr1 >> /tmp/trapped" USR1; '
    "sleep 100000 & echo $! > /tmp/quitter; "
    "sleep 100001 & echo $! > /tmp/victim; "
    "sleep 100002 & echo $! > /tmp/sleeper; "
    "sleep 100003 & echo $! > /tmp/stopped; "
    "echo ready; while :; do sleep 1; done"
)
"""PID 1 traps SIGUSR1 into a file; four sleepers: one killed inside, one by SIGKILL to its stand-in, one
stopped and continued through its stand-in, one stopped through its stand-in and then killed inside."""


# ---- what runvm should have written -------------------------------------------------------------------------

def vm_facts(cid: str) -> dict[str, Any]:
    """The facts limits.py sizes the allowance from, for a container of the `runvm` runtime (default cache
    size): how it booted and its accelerator, from runvm's state; no memory hot-plugged."""
    state = json.loads((Path(DOCKER_ROOT) / cid / "state.json").read_text())
    threads = 1 if state.get("accel") != "kvm" else qemu.Size().max_vcpus
    return limits.vm(boot=state.get("boot") or "templated", tb_mib=qemu.DEFAULT_TB_MIB, vcpu_threads=threads)


def expected_host(cid: str, memory: int, swap: int, cpus: float, pids: int) -> dict[str, Any]:
    """The host limits for the given guest limits, by meaning (as hostcgroup.Reading gives them)."""
    v = vm_facts(cid)
    extra = limits.memory_overhead(v)
    return {"memory": memory + extra, "swap": swap + extra,
            "cpus": round(cpus + limits.cpu_allowance_us(limits.DEFAULT_PERIOD_US) / limits.DEFAULT_PERIOD_US, 6),
            "pids": pids + limits.pids_allowance(v)}


def host_view(r: hostcgroup.Reading) -> dict[str, Any]:
    return {"memory": r.memory_limit, "swap": r.memory_swap_limit,
            "cpus": round(r.cpu_quota_cpus, 6) if r.cpu_quota_cpus is not None else None, "pids": r.pids_max}


def without_missing_swap(view: dict[str, Any], r: hostcgroup.Reading) -> dict[str, Any]:
    """memsw exists only with swap accounting: where the host lacks it, it is not compared."""
    if any(m.endswith(("memsw.limit_in_bytes", "memory.swap.max")) for m in r.missing):
        return {k: v for k, v in view.items() if k != "swap"}
    return view


def guest_view(c: Any) -> dict[str, Any]:
    """The container's own limits inside the guest (its cgroup namespace root), by meaning."""
    if hostcgroup.layout().version == 1:
        files = ["memory/memory.limit_in_bytes", "memory/memory.memsw.limit_in_bytes", "cpu/cpu.cfs_quota_us",
                 "cpu/cpu.cfs_period_us", "pids/pids.max"]
    else:
        files = ["memory.max", "memory.swap.max", "cpu.max", "cpu.max", "pids.max"]
    r = c.exec_run(["cat", *[f"/sys/fs/cgroup/{f}" for f in files]])
    assert r.exit_code == 0, r.output
    mem, swap, quota, period, pids = r.output.decode().split("\n")[:5]
    if hostcgroup.layout().version == 2:
        quota, period = quota.split()[0], period.split()[1]
        swap = str(int(mem) + int(swap)) if swap.isdigit() else "max"
    return {"memory": int(mem), "swap": int(swap) if swap.isdigit() else None,
            "cpus": round(int(quota) / int(period), 6) if quota.isdigit() else None,
            "pids": int(pids) if pids.isdigit() else None}


@pytest.fixture(scope="module", autouse=True)
def own_containers(dk: Any) -> Iterator[None]:
    """This module's containers are removed before and after it, even those a failed test left."""

    def remove() -> None:
        for c in dk.containers.list(all=True, filters={"label": "vmparity.test=runvm-host-limits"},
                                    ignore_removed=True):
            with contextlib.suppress(docker.errors.APIError):
                c.remove(force=True)

    remove()
    yield
    remove()


def run(dk: Any, cmd: list[str], **kw: Any) -> Any:
    return dk.containers.run(IMAGE, cmd, runtime="runvm", detach=True, labels=LABEL, network_mode="none", **kw)


@pytest.fixture(scope="module")
def limited(dk: Any) -> Iterator[Any]:
    """One runvm container with every limit set, for the start and update checks."""
    c = run(dk, ["sleep", "100000"], mem_limit="64m", nano_cpus=500_000_000, pids_limit=16, cpuset_cpus="0")
    yield c
    with contextlib.suppress(docker.errors.NotFound):
        c.remove(force=True)


@pytest.fixture(scope="module")
def trapper(dk: Any) -> Iterator[Any]:
    """One runvm container whose PID 1 traps SIGUSR1, with sleepers to signal: for docker top, then docker rm."""
    c = run(dk, ["sh", "-c", TRAP_SCRIPT])
    assert "ready" in wait_log(c, "ready", timeout=30)
    yield c
    with contextlib.suppress(docker.errors.NotFound):
        c.remove(force=True)


# ---- limits at start and docker stats -----------------------------------------------------------------------

def test_allowance_is_within_a_sane_band(limited: Any) -> None:
    """The allowance limits.py computes for this container's VM is neither nothing nor a second container."""
    v = vm_facts(limited.id)
    cold = v["boot"] == "cold"
    assert 32 * MiB <= limits.memory_overhead(v) <= (448 if cold else 160) * MiB, v
    assert 0 < limits.cpu_allowance_us(limits.DEFAULT_PERIOD_US) <= limits.DEFAULT_PERIOD_US // 4
    assert 8 <= limits.pids_allowance(v) <= 64, v


def test_host_cgroup_has_the_limits_plus_the_allowance(dk: Any, limited: Any) -> None:
    """-m 64m (swap 128m, Docker's default of twice the memory), --cpus 0.5, --pids-limit 16, --cpuset-cpus 0:
    the host cgroup holds each plus the allowance (cpuset exactly), the guest each exactly, and `docker stats`
    reports the host's memory limit instead of the host's RAM."""
    assert limited.attrs["HostConfig"]["MemorySwap"] == 128 * MiB
    r = hostcgroup.of_container(dk, limited.id)
    assert r.found, r.dirs
    assert without_missing_swap(host_view(r), r) == without_missing_swap(
        expected_host(limited.id, 64 * MiB, 128 * MiB, 0.5, 16), r)
    assert r.cpuset_cpus == "0"
    assert guest_view(limited) == {"memory": 64 * MiB, "swap": 128 * MiB, "cpus": 0.5, "pids": 16}
    limit, usage = hostcgroup.stats_memory(limited.stats(stream=False))
    assert limit == r.memory_limit
    assert limit != hostcgroup.host_ram_bytes()
    assert limit is not None and usage is not None and 0 < usage < limit


# ---- docker update ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("step", ["raise", "lower"])
def test_update_changes_host_and_guest(dk: Any, limited: Any, step: str) -> None:
    """docker update --memory/--memory-swap/--cpus/--pids-limit, up from the start values, then down below
    them: by the time it returns, the guest has the new limits and the host the new limits plus the allowance."""
    memory, swap, cpus, pids = (128 * MiB, 256 * MiB, 1.0, 32) if step == "raise" else (48 * MiB, 96 * MiB, 0.25, 12)
    r = docker_cli("update", "--memory", str(memory), "--memory-swap", str(swap), "--cpus", str(cpus),
                   "--pids-limit", str(pids), limited.id)
    assert r.returncode == 0, r.stderr
    h = hostcgroup.of_container(dk, limited.id)
    assert without_missing_swap(host_view(h), h) == without_missing_swap(
        expected_host(limited.id, memory, swap, cpus, pids), h)
    assert guest_view(limited) == {"memory": memory, "swap": swap, "cpus": cpus, "pids": pids}


def test_update_moves_the_cpuset_on_host_and_guest(dk: Any, limited: Any) -> None:
    """docker update --cpuset-cpus 1 on a container started on CPU 0 (runc accepts it): both cpusets follow."""
    r = docker_cli("update", "--cpuset-cpus", "1", limited.id)
    assert r.returncode == 0, r.stderr.decode(errors="replace")
    assert hostcgroup.of_container(dk, limited.id).cpuset_cpus == "1"
    assert limited.exec_run(["cat", "/sys/fs/cgroup/cpuset/cpuset.cpus"]).output.decode().strip() == "1"


def test_v2_swap_raised_alone_keeps_its_meaning() -> None:
    """An update's first pass may raise memory+swap alone; on a v2 host memory.swap.max is then written against
    the memory limit in force (this host is v1: the files are checked, not written)."""
    assert cgroups.files({"memory_swap": 300 * MiB}, v2=True, memory_now=200 * MiB) == [
        ("memory", "memory.swap.max", str(100 * MiB))]
    assert cgroups.files({"memory": 100 * MiB, "memory_swap": 300 * MiB}, v2=True, memory_now=200 * MiB) == [
        ("memory", "memory.max", str(100 * MiB)), ("memory", "memory.swap.max", str(200 * MiB))]


# ---- docker top ---------------------------------------------------------------------------------------------

def test_the_stand_in_is_stand_in_s_assembled(tmp_path: Path) -> None:
    """top.CODE, what every stand-in runs, is runtime/runvm/shim/stand_in.S as it reads (as, objcopy)."""
    if not (shutil.which("as") and shutil.which("objcopy")):
        pytest.skip("binutils (as, objcopy) not installed")
    source = Path(top_module.__file__).with_name("stand_in.S")
    subprocess.run(["as", "-o", str(tmp_path / "s.o"), str(source)], check=True)
    subprocess.run(["objcopy", "-O", "binary", "-j", ".text", str(tmp_path / "s.o"), str(tmp_path / "s.bin")],
                   check=True)
    assert (tmp_path / "s.bin").read_bytes() == top_module.CODE


def top(c: Any) -> dict[str, int]:
    """docker top's rows: command line -> PID."""
    t = c.top(ps_args="-eo pid,args")
    assert t["Titles"] == ["PID", "COMMAND"], t
    return {cmd: int(pid) for pid, cmd in t["Processes"]}


def guest_pid(c: Any, name: str) -> int:
    return int(c.exec_run(["cat", f"/tmp/{name}"]).output.decode().strip())


def guest_state(c: Any, gpid: int) -> str:
    """The guest process's state letter (R, S, T...), or "gone"."""
    r = c.exec_run(["sh", "-c", f"cat /proc/{gpid}/stat 2>/dev/null || echo gone"])
    out = r.output.decode().strip()
    return "gone" if out == "gone" else out.rsplit(")", 1)[1].split()[0]


def alive(pid: int, created: float) -> bool:
    """The process pid, the one created at `created`, is still on the host (a zombie too: it is in ps)."""
    try:
        return psutil.Process(pid).create_time() == created
    except psutil.NoSuchProcess:
        return False


def test_top_pids_are_stand_ins_that_forward_signals(dk: Any, trapper: Any) -> None:
    """A docker-top PID is a stand-in on the host, child of the vm-shim, outside the container's cgroup: SIGUSR1
    to it runs PID 1's trap in the guest; SIGSTOP and SIGCONT stop and continue its guest process; SIGKILL
    kills its guest process; a guest process killed inside takes its stand-in with it, even a stopped one."""
    shim = int(dk.api.inspect_container(trapper.id)["State"]["Pid"])
    rows = top(trapper)
    init = rows[f"sh -c {TRAP_SCRIPT}"]
    stand_in = psutil.Process(init)
    assert stand_in.ppid() == shim
    assert stand_in.exe().startswith(str(STAND_IN_DIR) + "/")
    assert all(line.endswith(":/") for line in Path(f"/proc/{init}/cgroup").read_text().split() if line)

    # a caught signal: the trap fires in the guest
    stand_in.send_signal(signal.SIGUSR1)
    wait_for(lambda: trapper.exec_run(["cat", "/tmp/trapped"]).output == b"usr1\n", "the USR1 trap ran", 10)

    # stop and continue
    sleeper = guest_pid(trapper, "sleeper")
    sleeper_host = rows["sleep 100002"]
    psutil.Process(sleeper_host).send_signal(signal.SIGSTOP)
    wait_for(lambda: guest_state(trapper, sleeper) == "T", "the guest sleeper stopped", 10)
    psutil.Process(sleeper_host).send_signal(signal.SIGCONT)
    wait_for(lambda: guest_state(trapper, sleeper) == "S", "the guest sleeper continued", 10)
    wait_for(lambda: psutil.Process(sleeper_host).status() != psutil.STATUS_STOPPED, "the stand-in continued", 5)

    # SIGKILL to the stand-in kills the guest process
    victim = guest_pid(trapper, "victim")
    psutil.Process(rows["sleep 100001"]).kill()
    wait_for(lambda: guest_state(trapper, victim) == "gone", "the guest victim killed", 10)

    # killed inside: the stand-in ends, a stopped one too
    for name, cmd, sig in (("quitter", "sleep 100000", "TERM"), ("stopped", "sleep 100003", "KILL")):
        host_pid = rows[cmd]
        created = psutil.Process(host_pid).create_time()
        if name == "stopped":
            psutil.Process(host_pid).send_signal(signal.SIGSTOP)
            wait_for(lambda: guest_state(trapper, guest_pid(trapper, "stopped")) == "T", "the guest stopped", 10)
        assert trapper.exec_run(["kill", f"-{sig}", str(guest_pid(trapper, name))]).exit_code == 0
        wait_for(partial(alive, host_pid, created), f"the stand-in of {cmd!r} killed inside gone", 10,
                 until=lambda still: not still)

    after = top(trapper)
    assert not {"sleep 100000", "sleep 100001", "sleep 100003"} & set(after)
    assert after["sleep 100002"] == sleeper_host and after[f"sh -c {TRAP_SCRIPT}"] == init


# ---- docker rm -f -------------------------------------------------------------------------------------------

def test_rm_leaves_no_cgroup_stand_in_shim_or_qemu(dk: Any, trapper: Any) -> None:
    """docker rm -f of a container with stand-ins: its host cgroup directories, its stand-ins, its vm-shim and
    its QEMU are all gone (and nothing else of it: state, sockets, mounts, processes naming it)."""
    cid = trapper.id
    state = json.loads((Path(DOCKER_ROOT) / cid / "state.json").read_text())
    pids = {"vm-shim": int(state["pid"]), "QEMU": int(state["qemu_pid"])}
    pids.update({f"stand-in {cmd!r}": pid for cmd, pid in top(trapper).items()})
    created = {name: psutil.Process(pid).create_time() for name, pid in pids.items()}
    dirs = [d for d in [*CGROUP.glob(f"*/docker/{cid}"), CGROUP / "docker" / cid] if d.is_dir()]
    assert len(dirs) >= 4, dirs  # memory, cpu, cpuset, pids at least
    trapper.remove(force=True)

    def left() -> list[str]:
        procs = [f"{name} {pid}" for name, pid in pids.items() if alive(pid, created[name])]
        return procs + [f"cgroup {d}" for d in dirs if d.exists()] + leftovers(DOCKER_ROOT, cid, f"/docker/{cid}")

    wait_for(left, "nothing of the removed container left", 10, until=lambda v: not v)
