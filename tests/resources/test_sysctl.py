"""`docker run --sysctl K=V`: a namespaced key takes V inside and leaves the host alone; a host-wide key is refused.

The docker CLI rejects non-namespaced keys itself; through the API (SDK, compose) the request reaches the runtime,
and runc refuses it ("not in a separate kernel namespace"). A runtime that accepts it must at least not touch the
host: the host's value is read before and after either way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from harness.context import Ctx, Refused
from harness.scenario import scenario
from tests.resources._support import ABSENT, cli_labels, shorten

NAMESPACED: dict[str, tuple[int, int]] = {
    "net.ipv4.ip_unprivileged_port_start": (0, 1024),
    "net.core.somaxconn": (128, 8192),
    "net.ipv4.tcp_syncookies": (0, 2),
    "kernel.shmmax": (1 << 24, 1 << 36),
    "kernel.shmmni": (256, 32768),
    "kernel.msgmax": (1024, 65536),
    "fs.mqueue.msg_max": (10, 100),
}
HOST_WIDE: dict[str, tuple[int, int]] = {"vm.swappiness": (0, 100), "kernel.panic": (0, 60)}


def _proc_path(key: str) -> str:
    return "/proc/sys/" + key.replace(".", "/")


def _host_value(key: str) -> str:
    try:
        return " ".join(Path(_proc_path(key)).read_text().split())
    except OSError:
        return ABSENT


def _refusal_kind(message: str) -> str:
    """Who refused and why, by meaning: the wording differs between the CLI, dockerd and each runtime."""
    low = message.lower()
    if "not in a separate kernel namespace" in low or "not namespaced" in low:
        return "not namespaced"
    if "is not allowed" in low or "not whitelisted" in low:
        return "not allowed"
    return shorten(message)


def _draw(key: str) -> st.SearchStrategy[dict[str, Any]]:
    lo, hi = NAMESPACED[key]
    return st.fixed_dictionaries({"key": st.just(key), "value": st.integers(min_value=lo, max_value=hi)})


@scenario("resources/sysctl",
          params=st.sampled_from(sorted(NAMESPACED)).flatmap(_draw),
          examples=[{"key": "net.ipv4.ip_unprivileged_port_start", "value": 512},
                    {"key": "kernel.shmmax", "value": 123456789},
                    {"key": "vm.swappiness", "value": 10}],
          host_sensitive=True)
def test_sysctl(ctx: Ctx, key: str, value: int) -> dict[str, Any]:
    host_before = _host_value(key)

    def restore_host_sysctl() -> None:
        """Put the host's value back, in clean-up: the harness snapshots host sysctls before clean-up, so a
        runtime that moved it is seen as host impact (and the observation says so), yet the host is mended."""
        if host_before != ABSENT and _host_value(key) != host_before:
            Path(_proc_path(key)).write_text(host_before + "\n")

    ctx.on_cleanup(restore_host_sysctl)
    script = f"cat {_proc_path(key)} 2>/dev/null || echo {ABSENT}"
    obs: dict[str, Any] = {}
    if key in HOST_WIDE:
        cli = ctx.cli("run", "--rm", f"--runtime={ctx.runtime}", *cli_labels(ctx), f"--sysctl={key}={value}",
                      ctx.image, "true", check=False)
        obs["cli_refuses"] = _refusal_kind(cli.stderr) if cli.returncode != 0 else False
        try:
            res = ctx.run_to_exit(["sh", "-c", script], timeout=60, sysctls={key: str(value)})
        except Refused as e:
            ctx.notes["api_refusal"] = str(e)
            obs.update(api_accepts=False, api_refusal=_refusal_kind(str(e)))
        else:
            obs.update(api_accepts=True, inside=" ".join(res.stdout.split()) or ABSENT)
    else:
        res = ctx.run_to_exit(["sh", "-c", script], timeout=60, sysctls={key: str(value)})
        inside = " ".join(res.stdout.split()) or ABSENT
        obs.update(inside=inside, applied=inside == str(value))
    obs["host_unchanged"] = _host_value(key) == host_before
    return obs
