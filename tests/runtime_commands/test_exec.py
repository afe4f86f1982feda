"""`docker exec` options: -e, -u, -w, -i (stdin to its end), -t, and the exit code coming back.

Each exec is a new process the runtime starts inside the running container with the options applied; the oracle
reads what the process itself saw.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from harness.context import Ctx, Refused
from harness.scenario import scenario
from tests.runtime_commands._support import cli_bytes, stable_refusals

STDIN = b"".join(b"line %06d of the exec stdin test\n" % i for i in range(8192))
"""About 270 KiB, more than a pipe buffer, so the relay has to keep up until the end of input."""


@scenario("runtime_commands/exec")
@stable_refusals
def test_exec(ctx: Ctx) -> dict[str, Any]:
    c = ctx.run(["sleep", "600"], working_dir="/")

    def out(cmd: str, **kw: Any) -> str:
        return ctx.sh(c, cmd, **kw).strip()

    obs: dict[str, Any] = {
        "env": out("echo \"$FOO|$EMPTY|${UNSET-unset}\"", environment=["FOO=bar baz", "EMPTY="]),
        "user": out("id", user="1000:1000"),
        "workdir": out("pwd", workdir="/tmp"),
        "default_user_workdir": out("echo $(id -u) $(pwd)"),
        "exit_code": ctx.exec(c, "exit 7").code,
    }

    # -i: the exec reads stdin to its end and reports what arrived; the CLI closes stdin when the input ends.
    proc = cli_bytes(ctx, "exec", "-i", c.id, "sh", "-c", "sha256sum; echo done", input=STDIN, timeout=60)
    if proc.returncode != 0:
        raise Refused(f"docker exec -i: exit {proc.returncode}: {proc.stderr.decode(errors='replace')[:300]}")
    got = proc.stdout.decode(errors="replace").split()
    obs["stdin"] = {
        "bytes_sent": len(STDIN),
        "digest_matches": bool(got) and got[0] == hashlib.sha256(STDIN).hexdigest(),
        "ran_past_eof": got[-1:] == ["done"],
    }

    # -t: a pseudo-terminal on stdout; its output comes back with the terminal's CRLF line ends.
    r = ctx.exec(c, "[ -t 0 ] && echo stdin-tty; [ -t 1 ] && echo stdout-tty; tty", tty=True)
    text = r.stdout
    obs["tty"] = {
        "stdin_is_tty": "stdin-tty" in text,
        "stdout_is_tty": "stdout-tty" in text,
        "tty_says": re.sub(r"\d+", "N", text.strip().splitlines()[-1]) if text.strip() else "",  # /dev/pts/N
        "crlf_line_ends": "\r\n" in text,
    }
    return obs
