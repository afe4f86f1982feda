"""The guest artifacts for a VM. When only the agent changed since set-up, the initramfs is rebuilt on the spot
(about a second, under the builder's lock) rather than failing every container until someone re-runs set-up."""

from __future__ import annotations

from runtime.guest import build
from runtime.runvm import log


def artifacts() -> build.GuestArtifacts:
    try:
        return build.artifacts()
    except build.GuestNotBuilt as e:
        log.info(f"runvm: {e}; building it now")
        build.ensure(log=lambda _msg: None)
        return build.artifacts()


TCG_ONLY = "mitigations=off"
"""Under emulation the guest kernel's Spectre defences (retpolines, RSB filling, barriers) protect nothing: the
host runs translated code whose branches are QEMU's, not the guest's. They only cost time (about 5% of a start);
with KVM the guest's code runs on the CPU and they stay on."""


def cmdline(accel: str, extra: str = "") -> str:
    return build.kernel_cmdline(f"{TCG_ONLY if accel == 'tcg' else ''} {extra}".strip())
