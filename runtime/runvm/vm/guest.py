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


def cmdline(extra: str = "") -> str:
    return build.kernel_cmdline(extra)
