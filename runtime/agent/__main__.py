"""Guest agent entry point: PID 1 of the VM (started by the initramfs's /init through switch_root).

Everything slow (imports, finding the port) happens here, before a template snapshot is taken, so a VM
restored from the template answers its first request at once.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time

PORT_NAME = "vmparity.agent"


def find_port(timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    base = "/sys/class/virtio-ports"
    while time.monotonic() < deadline:
        if os.path.isdir(base):
            for entry in os.listdir(base):
                try:
                    with open(os.path.join(base, entry, "name")) as f:
                        if f.read().strip() == PORT_NAME:
                            return f"/dev/{entry}"
                except OSError:
                    continue
        time.sleep(0.05)
    raise SystemExit(f"agent: no virtio-serial port named {PORT_NAME}")


def log(msg: str) -> None:
    try:
        with open("/dev/kmsg", "w") as f:
            f.write(f"vmparity-agent: {msg}\n")
    except OSError:
        print(f"vmparity-agent: {msg}", file=sys.stderr, flush=True)


async def serve(path: str) -> None:
    from runtime.agent.server import Agent

    fd = os.open(path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    Agent(fd)
    log(f"serving on {path} at {time.clock_gettime(time.CLOCK_BOOTTIME):.2f}s")
    await asyncio.Event().wait()


def main() -> None:
    # warm the imports a request would otherwise pay for after every restore
    import runtime.agent.net
    import runtime.agent.process
    import runtime.agent.server  # noqa: F401

    os.makedirs("/run/share", exist_ok=True)
    path = find_port()
    while True:
        try:
            asyncio.run(serve(path))
        except Exception as e:  # PID 1 must not exit: the kernel would panic and take the container with it
            log(f"loop failed: {e!r}; restarting")
            time.sleep(0.1)


if __name__ == "__main__":
    main()
