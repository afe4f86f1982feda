"""DOCKER_RAMDISK=true: dockerd passes --no-pivot to the runtime, which must still start the container cleanly.

A root on a ramdisk cannot be pivot_root'ed away from, so the runtime has to chroot/move-mount instead; what the
container sees (its root, its output, its exit code) must not change. Runs in a disposable daemon.
"""

from __future__ import annotations

from typing import Any

from harness.context import Ctx, Refused
from harness.scenario import scenario

SCRIPT = ("echo hello-from-ramdisk; "
          "awk '$5 == \"/\" {for (i = 7; $i != \"-\"; i++); print \"rootfs=\" $(i + 1); exit}' /proc/self/mountinfo; "
          "ls / | sort | tr '\\n' ' '; echo; "
          "[ -d /.pivot_root* ] 2>/dev/null && echo leftover-pivot-dir; "
          "exit 3")


@scenario("resources/ramdisk", host_sensitive=True, timeout=300)
def test_ramdisk(ctx: Ctx) -> dict[str, Any]:
    d = ctx.disposable(env={"DOCKER_RAMDISK": "true"})
    try:
        c = d.run(["sh", "-c", SCRIPT], runtime=ctx.runtime)
    except Refused as e:
        daemon = getattr(d, "daemon", None)
        if daemon is None:
            raise
        # the runtime's own complaint (e.g. an unknown --no-pivot flag) may be in dockerd's log
        ctx.notes["dockerd_log_tail"] = [ln for ln in daemon.log_tail(60).splitlines()
                                         if "level=error" in ln or "level=warn" in ln][-15:]
        # the disposable daemon's random paths would make the same refusal look different on every run
        raise Refused(str(e).replace(daemon.record.data_root, "<disposable data-root>")) from e
    code = d.wait(c, timeout=60)
    lines = d.logs(c, stderr=False).splitlines()
    ctx.notes["stderr"] = d.logs(c, stdout=False)[-2000:]
    # evidence only: a VM shares the rootfs over 9p, whatever DOCKER_RAMDISK says; the scenario is about --no-pivot
    ctx.notes["root_fs_type"] = next((ln.removeprefix("rootfs=") for ln in lines if ln.startswith("rootfs=")),
                                     "absent")
    return {
        "exit_code": code,
        "greeting": "hello-from-ramdisk" in lines,
        "root_entries": lines[2].split() if len(lines) > 2 else [],
        "pivot_leftovers": "leftover-pivot-dir" in lines,
    }
