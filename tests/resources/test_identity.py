"""The process spec as the process sees it: user and groups, hostname, environment, cwd, capabilities,
no-new-privileges and `--init`.

Two containers, both observed from their main process (not `docker exec`, whose identity rules are another matter),
sharing a volume that holds a setuid-root busybox:
- as root with `--cap-drop NET_RAW,CHOWN --cap-add SYS_ADMIN`: what the capability sets grant (mount works, chown
  does not), and the control for the setuid probe (run through `su tester`, the setuid binary does elevate);
- as 1000:1000 with the identity flags: id, hostname, env, cwd, groups, capability sets, PID 1's name, and
  no-new-privileges both as the kernel reports it (prctl, through `setpriv -d`) and by its effect: the setuid
  binary no longer elevates.
"""

from __future__ import annotations

import contextlib
from typing import Any

import docker

from harness.context import Ctx, refusals
from harness.scenario import scenario
from tests.resources._support import parse_pairs, status_field

SUID_PROBE = "/shared/busybox crontab -l 2>&1 | grep -q 'must be suid' && echo no || echo yes"
"""busybox refuses its setuid-only applets (crontab) with "must be suid" when exec did not make it root."""
ROOT_SCRIPT = rf"""
cp /bin/busybox /shared/busybox && chmod 4755 /shared/busybox
echo mount=$(mkdir -p /mnt/vmp && mount -t tmpfs none /mnt/vmp 2>/dev/null && echo ok || echo refused)
echo chown=$(touch /tmp/f && chown 1000 /tmp/f 2>/dev/null && echo ok || echo refused)
echo setuid_elevates=$(su -s /bin/sh tester -c "{SUID_PROBE}")
echo ---
cat /proc/self/status
"""
USER_SCRIPT = rf"""
echo id=$(id)
echo hostname=$(hostname)
echo kernel_hostname=$(cat /proc/sys/kernel/hostname)
echo env=$VMP_GREETING
echo pwd=$(pwd)
echo pid1=$(cat /proc/1/comm)
echo umask=$(umask)
touch ./vmp-created && echo created_owner=$(stat -c %u:%g ./vmp-created)
echo setuid_elevates=$({SUID_PROBE})
echo no_new_privs=$(setpriv -d 2>/dev/null | sed -n 's/^no_new_privs: //p')
echo ---
cat /proc/self/status
"""
CAPS = ("CapInh", "CapPrm", "CapEff", "CapBnd")
"""Docker sets these; the ambient set it never fills (and gVisor's /proc does not show it)."""


def _split(out: str) -> tuple[dict[str, str], str]:
    head, _, status = out.partition("---\n")
    return parse_pairs(head), status


def _shared_volume(ctx: Ctx) -> str:
    """A labelled volume for the setuid busybox (inside Docker's root-only tree, never a world-reachable path)."""
    with refusals("docker volume create"):
        vol = ctx.client.volumes.create(labels=dict(ctx.labels))

    def remove() -> None:  # runs before the ctx removes containers: free the volume first
        for c in ctx.client.containers.list(all=True, filters={"volume": vol.name}):
            with contextlib.suppress(docker.errors.NotFound):
                c.remove(force=True)
        with contextlib.suppress(docker.errors.NotFound):
            vol.remove(force=True)

    ctx.on_cleanup(remove)
    return vol.name


@scenario("resources/identity")
def test_identity(ctx: Ctx) -> dict[str, Any]:
    shared = {_shared_volume(ctx): {"bind": "/shared", "mode": "rw"}}
    root = ctx.run_to_exit(["sh", "-c", ROOT_SCRIPT], timeout=60, volumes=shared,
                           cap_drop=["NET_RAW", "CHOWN"], cap_add=["SYS_ADMIN"])
    user = ctx.run_to_exit(["sh", "-c", USER_SCRIPT], timeout=60, volumes=shared, user="1000:1000",
                           group_add=["1001"], hostname="vmp-host", environment={"VMP_GREETING": "hello there"},
                           working_dir="/tmp", cap_drop=["NET_RAW"], cap_add=["SYS_ADMIN"],
                           security_opt=["no-new-privileges"], init=True)
    root_seen, root_status = _split(root.stdout)
    seen, status = _split(user.stdout)
    ctx.notes["stderr"] = (root.stderr + user.stderr)[-2000:]
    return {
        "as_root": {
            "mount_with_sys_admin": root_seen.get("mount", "absent"),
            "chown_without_chown": root_seen.get("chown", "absent"),
            "setuid_elevates_for_tester": root_seen.get("setuid_elevates", "absent"),
            **{k: status_field(root_status, k) for k in CAPS},
        },
        "as_user": {
            **{k: seen.get(k, "absent") for k in ("id", "hostname", "kernel_hostname", "env", "pwd", "pid1",
                                                   "umask", "created_owner")},
            "setuid_elevates_under_no_new_privs": seen.get("setuid_elevates", "absent"),
            "groups": status_field(status, "Groups"),
            "no_new_privs": seen.get("no_new_privs", "absent"),
            **{k: status_field(status, k) for k in CAPS},
        },
    }
