"""Build the suite's test images locally (no registry is reachable): a busybox-static rootfs via docker import."""

from __future__ import annotations

import hashlib
import io
import subprocess
import tarfile
from pathlib import Path

import docker

BUSYBOX = Path("/bin/busybox")
IMAGE = "vmparity/busybox"
"""The one image every scenario uses; `:latest` always points at the current build."""

PASSWD = ("root:x:0:0:root:/root:/bin/sh\ntester:x:1000:1000:tester:/home/tester:/bin/sh\n"
          "nobody:x:65534:65534:nobody:/:/bin/false\n")
GROUP = "root:x:0:\ntester:x:1000:\nextra:x:1001:tester\nnogroup:x:65534:\n"
CHANGES = ['ENV PATH=/usr/sbin:/usr/bin:/sbin:/bin', 'CMD ["sh"]']


def _applets() -> list[str]:
    out = subprocess.run([str(BUSYBOX), "--list"], check=True, capture_output=True, text=True).stdout
    return sorted(a for a in out.split() if a != "busybox")


def rootfs_tar() -> bytes:
    """A deterministic tarball: same busybox, same bytes, same image tag."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        def add(name: str, *, data: bytes | None = None, mode: int = 0o755, link: str | None = None,
                kind: bytes = tarfile.DIRTYPE, uid: int = 0) -> None:
            info = tarfile.TarInfo(name)
            info.mtime, info.mode, info.uid, info.gid = 0, mode, uid, uid
            if link is not None:
                info.type, info.linkname = tarfile.SYMTYPE, link
                tar.addfile(info)
            elif data is not None:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                info.type = kind
                tar.addfile(info)

        for d in ("bin", "dev", "etc", "proc", "sys", "tmp", "root", "run", "var", "data",
                  "usr", "usr/bin", "usr/sbin", "sbin"):
            add(d, mode=0o1777 if d == "tmp" else 0o755)
        add("home", mode=0o755)
        add("home/tester", mode=0o755, uid=1000)
        add("bin/busybox", data=BUSYBOX.read_bytes())
        for applet in _applets():
            add(f"bin/{applet}", link="busybox")
        add("etc/passwd", data=PASSWD.encode(), mode=0o644)
        add("etc/group", data=GROUP.encode(), mode=0o644)
    return buf.getvalue()


def ensure(client: docker.DockerClient) -> str:
    data = rootfs_tar()
    tag = hashlib.sha256(data + "\n".join(CHANGES).encode()).hexdigest()[:12]
    ref = f"{IMAGE}:{tag}"
    try:
        image = client.images.get(ref)
    except docker.errors.ImageNotFound:
        # The SDK's import_image takes a path or URL; the raw API call takes the bytes directly.
        resp = client.api.import_image_from_data(data, repository=IMAGE, tag=tag, changes=CHANGES)
        if "error" in str(resp).lower():
            raise SystemExit(f"setup: docker import of {ref} failed: {resp}") from None
        image = client.images.get(ref)
    image.tag(IMAGE, "latest")
    return ref
