"""`--tmpfs /run:size=8m`, `-v hostdir:/data` (rw and ro) and `--read-only`, as a process inside experiences them.

Files must round-trip through the bind mount both ways (including a change the host makes while the container
runs, which a caching file share can miss) and keep their owner; every read-only place must refuse writes, and the
tmpfs must have its size and Docker's default noexec.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from harness.context import Ctx, ExecResult
from harness.scenario import scenario

HOST_BEFORE = "written on the host before start\n"
HOST_DURING = "rewritten on the host while running\n"
INSIDE = "written inside\n"


def _write(r: ExecResult) -> str:
    """A write attempt by meaning: `ok`, or why it failed (the wording differs between kernels)."""
    if r.code == 0:
        return "ok"
    text = (r.stdout + r.stderr).lower()
    for needle, meaning in (("read-only", "read-only file system"), ("permission denied", "permission denied"),
                            ("no space", "no space left")):
        if needle in text:
            return meaning
    return "failed"


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


@scenario("resources/tmpfs-volumes")
def test_tmpfs_volumes(ctx: Ctx) -> dict[str, Any]:
    host_dir = Path(tempfile.mkdtemp(prefix="vmp-tv-", dir="/tmp"))
    ctx.on_cleanup(lambda: shutil.rmtree(host_dir, ignore_errors=True))
    host_dir.chmod(0o777)
    (host_dir / "from-host.txt").write_text(HOST_BEFORE)
    c = ctx.run(["sleep", "600"], read_only=True, tmpfs={"/run": "size=8m"},
                volumes=[f"{host_dir}:/data:rw", f"{host_dir}:/rodata:ro"])

    run_kib = int(ctx.sh(c, "df -k /run | awk 'NR==2 {print $2}'").strip() or 0)
    run_fill = ctx.exec(c, "dd if=/dev/zero of=/run/fill bs=1M count=9 2>&1")
    ctx.exec(c, "rm -f /run/fill")
    run_exec = ctx.exec(c, "cp /bin/busybox /run/bb || { echo copy-failed; exit; }; "
                           "/run/bb true 2>/dev/null && echo exec-ok || echo exec-refused").stdout.strip()

    seen_before = ctx.exec(c, "cat /data/from-host.txt").stdout
    (host_dir / "from-host.txt").write_text(HOST_DURING)
    (host_dir / "late.txt").write_text(HOST_DURING)
    seen_during = ctx.exec(c, "cat /data/from-host.txt").stdout
    seen_late = ctx.exec(c, "cat /data/late.txt").stdout
    ctx.exec(c, f"printf '{INSIDE.strip()}\\n' > /data/from-inside.txt")
    ctx.exec(c, f"printf '{INSIDE.strip()}\\n' > /data/from-tester.txt", user="1000:1000")
    owners = {}
    for name in ("from-inside.txt", "from-tester.txt"):
        st = (host_dir / name).stat() if (host_dir / name).exists() else None
        owners[name] = f"{st.st_uid}:{st.st_gid}" if st else "absent"

    return {
        "run_tmpfs_mib": run_kib // 1024,
        "run_write_past_size": _write(run_fill),
        "run_exec_from_tmpfs": run_exec or "failed",
        "bind_host_file_seen_inside": seen_before == HOST_BEFORE,
        "bind_host_rewrite_seen_inside": seen_during == HOST_DURING,
        "bind_host_new_file_seen_inside": seen_late == HOST_DURING,
        "bind_inside_file_seen_on_host": _read(host_dir / "from-inside.txt") == INSIDE,
        "bind_owner_on_host": owners,
        "ro_bind_write": _write(ctx.exec(c, "echo x > /rodata/nope")),
        "ro_bind_file_readable": ctx.exec(c, "cat /rodata/from-host.txt").stdout == HOST_DURING,
        "read_only_root_write": _write(ctx.exec(c, "echo x > /nope")),
        "read_only_root_tmp_write": _write(ctx.exec(c, "echo x > /tmp/nope")),
    }
