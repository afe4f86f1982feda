"""Containers' streams: piped stdin to its end, 10 MiB of stdout byte-exact, stderr kept apart, and -t.

One `docker run -i` (attached, as users pipe through it) reads its stdin to the end and prints its digest, then
10 MiB of generated data and a marker on stdout and two lines on stderr. The same bytes are checked as the CLI
received them and as `docker logs` kept them. A second container runs with a terminal.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from harness.context import Ctx, Refused, refusals
from harness.scenario import scenario
from tests.runtime_commands._support import adopt, cli_bytes, label_flags, name, stable_refusals

MiB = 1024 * 1024
STDIN = bytes(range(256)) * 4 * 1024 * 2
"""2 MiB holding every byte value: binary stdin must arrive unchanged."""

LINE = b"a" * 1023 + b"\n"
OUT = LINE * (10 * MiB // len(LINE)) + b"OUT-END\n"
"""What the container generates on stdout after the digest: 10 MiB of 1 KiB lines (deterministic), and a marker."""

SCRIPT = ("sha256sum; line=$(head -c 1023 /dev/zero | tr '\\0' a); yes \"$line\" | head -c 10485760; "
          "echo OUT-END; echo ERR-1 >&2; echo ERR-2 >&2")


def _streams(stdout: bytes, stderr: bytes) -> dict[str, Any]:
    """Compare received streams with what the container was made to write."""
    first, _, rest = stdout.partition(b"\n")
    return {
        "stdin_digest_matches": first.split(b" ")[0].decode(errors="replace") == hashlib.sha256(STDIN).hexdigest(),
        "stdout_mib": len(rest) // MiB,
        "stdout_intact": hashlib.sha256(rest).digest() == hashlib.sha256(OUT).digest(),
        "stderr": stderr.decode(errors="replace").split(),
    }


@scenario("runtime_commands/stdio")
@stable_refusals
def test_stdio(ctx: Ctx) -> dict[str, Any]:
    n = name(ctx, "stdio")
    adopt(ctx, n)
    proc = cli_bytes(ctx, "run", "-i", "--name", n, "--runtime", ctx.runtime, *label_flags(ctx), ctx.image,
                     "sh", "-c", SCRIPT, input=STDIN, timeout=120)
    if proc.returncode != 0:
        raise Refused(f"docker run -i: exit {proc.returncode}: {proc.stderr.decode(errors='replace')[-400:]}")
    with refusals("docker logs"):
        c = ctx.client.containers.get(n)
        logged = {"stdout": c.logs(stdout=True, stderr=False), "stderr": c.logs(stdout=False, stderr=True)}
    obs: dict[str, Any] = {
        "attached": _streams(proc.stdout, proc.stderr),
        "logs": _streams(logged["stdout"], logged["stderr"]),
    }

    r = ctx.run_to_exit(["sh", "-c", "tty; [ -t 0 ] && echo stdin-tty; [ -t 1 ] && echo stdout-tty"], tty=True,
                        timeout=30)
    text = r.stdout
    obs["tty"] = {
        "tty_says": re.sub(r"\d+", "N", text.strip().splitlines()[0]) if text.strip() else "",  # /dev/pts/N
        "stdin_is_tty": "stdin-tty" in text,
        "stdout_is_tty": "stdout-tty" in text,
        "crlf_line_ends": "\r\n" in text,
    }
    return obs
