"""`-m 64m` (swap included): a process allocating 100 MiB is OOM-killed; what the container sees as its memory,
and what the host's tools see: the limit and the memory charged to the container's cgroup.

The container's main process waits for a go-file. First a `docker exec`'d allocator (busybox dd with a 100 MiB
buffer) runs against the limit while the container stays up (under runc: the OOM killer picks the allocator), so
the host side can be read after it: the limit
files at the container's cgroupsPath, the most memory the host ever charged there (the cgroup's peak), the OOM
kills the host kernel counted there, and what `docker stats` reports as the limit and the usage. Then the main
process itself becomes the allocator, so the container's exit code and State.OOMKilled are the documented effects.
The cgroup file and MemTotal inside are what tools inside size themselves by.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from docker.models.containers import Container

from harness import hostcgroup
from harness.context import Ctx, refusals
from harness.scenario import scenario
from harness.waiting import poll
from tests.resources._support import ABSENT, cgroup_view, parse_pairs

MiB = 1024 * 1024
LIMIT = 64 * MiB
HOG = "dd if=/dev/zero of=/dev/null bs=100M count=1"
EXEC_HOG_TIMEOUT_S = 45
"""The exec'd allocator is killed within a second under runc (seconds under TCG); an exec that never comes back
(the sandbox died with it, say) is an observation, not a hung cell."""
DEAD_GRACE_S = 5
"""How long an exec may still report its end after the container itself has exited."""
OOM_COUNT_S = 3
GONE = "gone with the container"
MAIN = f"while [ ! -e /tmp/go ]; do sleep 1; done; exec {HOG}"
INSIDE = (cgroup_view({"limit": "memory_limit", "memsw": "memsw_limit"})
          + "\necho memtotal_kib=$(awk '/^MemTotal:/ {print $2}' /proc/meminfo)")


def _host_memtotal_kib() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1])
    return 0


def _bytes(raw: str) -> str:
    return f"{int(raw) // MiB} MiB" if raw.isdigit() and int(raw) < 1 << 62 else ("unlimited" if raw.isdigit() else raw)


def _memtotal(kib: str) -> str:
    """MemTotal by meaning: the host's, the limit, or something else (e.g. a VM's memory)."""
    if not kib.isdigit():
        return ABSENT
    if int(kib) == _host_memtotal_kib():
        return "host's"
    if int(kib) * 1024 == LIMIT:
        return "the limit"
    return "other"


def _charged(value: int | None) -> str:
    """Memory charged on the host against the 64 MiB limit, by what a user would notice: an allocator whose pages
    are not charged there at all (below half the limit, where it ran into the limit), charged up to the limit as
    under runc, or more than the limit (host tools report a container over its limit; the host does not enforce)."""
    if value is None:
        return "not readable"
    if value > LIMIT:
        return "above the limit"
    return "up to the limit" if value >= LIMIT // 2 else "below half the limit"


def _usage(value: int | None) -> str:
    """An idle container's usage, against the limit: runc's is well under a quarter of it (a sleeping shell).
    A quarter or more is what a user notices (an idle container near its limit); how much more is noise here,
    the peak below tells whether the host charges more than the limit."""
    if value is None:
        return "not reported"
    return "a quarter of the limit or more" if value > LIMIT // 4 else "under a quarter of the limit"


def _exec_hog(ctx: Ctx, c: Container,
              host: Callable[[], hostcgroup.Reading]) -> tuple[str, hostcgroup.Reading | None]:
    """`docker exec C dd ...` with a bounded wait: how the exec ended ("killed (137)", another exit, or no answer)
    and the host cgroup's reading after it (None: the container, and its cgroup, died with the allocator)."""
    ctx.evidence.command(f"docker exec {c.name} {HOG}  # at most {EXEC_HOG_TIMEOUT_S} s")
    proc = subprocess.Popen(["docker", "-H", ctx.docker_host, "exec", c.id, "sh", "-c", HOG], text=True,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    start = time.monotonic()
    last, exited_at = host(), None
    code: int | None = None
    try:
        while proc.poll() is None and time.monotonic() < start + EXEC_HOG_TIMEOUT_S:
            if (reading := host()).found:
                last = reading
            if exited_at is None and not ctx.inspect(c)["State"]["Running"]:
                exited_at = time.monotonic()
            if exited_at is not None and time.monotonic() > exited_at + DEAD_GRACE_S:
                break
            time.sleep(0.2)
        code = proc.poll()
    finally:
        if proc.poll() is None:
            proc.kill()  # the docker CLI this oracle started; its exec dies with the container
        _, err = proc.communicate()
    ctx.notes["exec_hog"] = {"stderr": (err or "")[-500:], "seconds": round(time.monotonic() - start, 1)}
    if code is None:
        result = ("no answer: the container had exited" if exited_at is not None
                  else f"no answer within {EXEC_HOG_TIMEOUT_S} s")
    else:
        result = "killed (137)" if code == 137 else f"exit {code}"
    if exited_at is not None:
        return result, None  # the cgroup went with the container: what was sampled before is a race, not a reading
    # The host kernel counts the OOM kill when it happens; a runtime that relays a guest's OOM to the host cgroup
    # does it a moment later: 3 s, as events-oom allows for the oom event, the delay in notes.
    counted = poll(host, lambda r: not r.found or (r.oom_kills or 0) > 0, timeout=OOM_COUNT_S, interval=0.2)
    ctx.notes["host_oom_kill_counted"] = counted.note()
    return result, counted.value if counted.value.found else last


def _stats(ctx: Ctx, c: Container) -> tuple[int | None, int | None]:
    with refusals("docker stats"):
        return hostcgroup.stats_memory(ctx.client.api.stats(c.id, stream=False, one_shot=True))


@scenario("resources/memory")
def test_memory(ctx: Ctx) -> dict[str, Any]:
    c = ctx.run(["sh", "-c", MAIN], mem_limit="64m", memswap_limit="64m")
    seen = parse_pairs(ctx.sh(c, INSIDE))
    host = hostcgroup.reader(ctx.client, c.id)
    idle = host()
    stats_limit, stats_idle = _stats(ctx, c)

    hog, after = _exec_hog(ctx, c, host)
    running_after_hog = bool(ctx.inspect(c)["State"]["Running"])

    if running_after_hog:
        ctx.sh(c, "touch /tmp/go")  # the main process becomes the allocator
    code = ctx.wait(c, timeout=120)
    state = ctx.inspect(c)["State"]
    ctx.notes.update(memtotal_kib=seen.get("memtotal_kib"), stderr=ctx.logs(c, stdout=False)[-1000:],
                     host_idle=idle.record(), host_after_hog=after.record() if after else None,
                     docker_stats={"limit": stats_limit, "idle_usage": stats_idle})
    return {
        "exit_code": code,
        "oom_killed": bool(state.get("OOMKilled")),
        "cgroup_limit": _bytes(seen.get("limit", ABSENT)),
        "cgroup_memsw_limit": _bytes(seen.get("memsw", ABSENT)),
        "memtotal": _memtotal(seen.get("memtotal_kib", ABSENT)),
        "exec_hog": {"result": hog, "container_running_after": running_after_hog},
        "host": {
            **{k: v for k, v in hostcgroup.limits(idle).items() if k in ("memory", "memory_swap", "cgroup")},
            "charged_while_idle": _usage(idle.memory_usage),
            "peak_charged_with_the_hog": _charged(after.memory_peak) if after else GONE,
            "oom_kills_counted": GONE if after is None else "not readable" if after.oom_kills is None
            else "none within 3 s" if after.oom_kills == 0 else "some",
        },
        "docker_stats": {"limit": hostcgroup.describe_limit(stats_limit), "usage_while_idle": _usage(stats_idle)},
    }
