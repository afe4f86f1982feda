"""runc's rule for linux.sysctl, kept for compatibility: Docker users expect a key that is not namespaced to be
refused. A VM has its own kernel, so such keys are safe in the guest: a bundle can opt in with the annotation
below (the host's value is never touched either way)."""

from __future__ import annotations

from typing import Any

from runtime.runvm.errors import RunvmError

GUEST_KERNEL_ANNOTATION = "run.vmparity.runvm/guest-kernel-sysctls"
IPC_KEYS = {"kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall", "kernel.shmmax",
            "kernel.shmmni", "kernel.shm_rmid_forced"}


def _private(spec: dict[str, Any], ns_type: str) -> bool:
    return any(ns.get("type") == ns_type for ns in (spec.get("linux") or {}).get("namespaces") or [])


def check(spec: dict[str, Any]) -> None:
    sysctls = (spec.get("linux") or {}).get("sysctl") or {}
    if (spec.get("annotations") or {}).get(GUEST_KERNEL_ANNOTATION) == "true":
        return
    for key in sysctls:
        if key in IPC_KEYS or key.startswith(("fs.mqueue.", "kernel.msg")):
            if _private(spec, "ipc"):
                continue
        elif key.startswith("net."):
            if _private(spec, "network"):
                continue
        elif key in ("kernel.hostname", "kernel.domainname") and _private(spec, "uts"):
            continue
        raise RunvmError(f"sysctl {key!r} is not in a separate kernel namespace (runc refuses it too; "
                         f"runvm can set it in the guest kernel with the annotation {GUEST_KERNEL_ANNOTATION}=true)")
