"""OCI hooks (Docker's prestart hook `libnetwork-setkey` configures the netns), run in the runtime's own
namespaces with the container state on stdin, as runc runs them."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

from runtime.runvm.errors import RunvmError


async def run_async(hooks: list[dict[str, Any]], state: dict[str, Any],
                    preexec: Callable[[], None] | None = None) -> None:
    """Each hook with the state on stdin, in order; the first failure is an error naming the hook. Without
    threads: the shim forks helpers while hooks run, and a fork while another thread holds a lock (the import
    lock, malloc's) deadlocks the child."""
    import asyncio

    payload = json.dumps(state).encode()
    for hook in hooks:
        path = hook.get("path")
        if not path:
            raise RunvmError("hook has no path")
        args = hook.get("args") or [path]
        env = dict(e.split("=", 1) for e in hook.get("env") or [] if "=" in e)
        try:
            proc = await asyncio.create_subprocess_exec(  # argv[0] kept: dockerd's re-exec dispatches on it
                args[0], *args[1:], executable=path, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE, env=env, preexec_fn=preexec, close_fds=True)
        except OSError as e:
            raise RunvmError(f"running hook {path}: {e.strerror}") from e
        try:
            out, err = await asyncio.wait_for(proc.communicate(payload), hook.get("timeout") or None)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise RunvmError(f"hook {path} did not finish within {hook.get('timeout')}s") from None
        if proc.returncode != 0:
            text = (err or out).decode(errors="replace").strip()
            raise RunvmError(f"hook {os.path.basename(path)} failed with exit status {proc.returncode}: {text}")


def of(spec: dict[str, Any], *kinds: str) -> list[dict[str, Any]]:
    hooks = spec.get("hooks") or {}
    return [h for kind in kinds for h in hooks.get(kind) or []]
