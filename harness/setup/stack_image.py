"""A container stack's image: its Debian packages in a root filesystem of their own, built with debootstrap and
imported into the host daemon. The host's own packages are never touched.

The image is the cache. Its tag is a hash of the suite and the versions the mirror lists for the stack's
packages, so set-up rebuilds it exactly when one of them changed (about 30 s and 580 MB for sid), and keeps it
when the mirror cannot be reached."""

from __future__ import annotations

import contextlib
import hashlib
import json
import lzma
import shutil
import subprocess
import urllib.request
from pathlib import Path

import docker

from harness import paths
from harness.stack_data import StackData

ARCH = "amd64"
BUILD_LOG = "/tmp/vmparity-stack-build.log"


def repository(stack: StackData) -> str:
    return f"vmparity/stack-{stack.name}"


def mirror_versions(stack: StackData, timeout: float = 60) -> dict[str, str]:
    """The version of each of the stack's packages in the mirror's index for its suite (main)."""
    url = f"{stack.mirror}/dists/{stack.suite}/main/binary-{ARCH}/Packages.xz"
    with urllib.request.urlopen(url, timeout=timeout) as response:
        text = lzma.decompress(response.read()).decode("utf-8", "replace")
    wanted, found = set(stack.packages), {}
    for para in text.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in para.splitlines() if ": " in line and not line[0].isspace())
        if fields.get("Package") in wanted:
            found[fields["Package"]] = fields.get("Version", "")
    missing = sorted(wanted - set(found))
    if missing:
        raise SystemExit(f"setup: stack {stack.name}: {url} lists no {', '.join(missing)}")
    return dict(sorted(found.items()))


def key(stack: StackData, versions: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps({"suite": stack.suite, "versions": versions}, sort_keys=True).encode()
                          ).hexdigest()[:12]


def _images(client: docker.DockerClient, stack: StackData) -> list[docker.models.images.Image]:
    return client.images.list(name=repository(stack))


def installed_versions(root: Path, packages: tuple[str, ...]) -> dict[str, str]:
    """What dpkg in root says of the packages (root "/": this machine, e.g. a kind-vm stack's own)."""
    prefix = [] if root == Path("/") else ["chroot", str(root)]
    done = subprocess.run([*prefix, "dpkg-query", "-W", "-f=${Package} ${Version}\n", *packages],
                          capture_output=True, text=True)
    if done.returncode > 1:  # 1: some package is not installed, the others are listed
        raise SystemExit(f"setup: dpkg-query in {root} failed: {done.stderr.strip()}")
    out = done.stdout
    return dict(sorted(line.split(" ", 1) for line in out.splitlines() if " " in line))


def debootstrap(stack: StackData, root: Path) -> dict[str, str]:
    """The stack's packages in a fresh root filesystem at root; returns the versions installed there."""
    shutil.rmtree(root, ignore_errors=True)
    root.parent.mkdir(parents=True, exist_ok=True)
    argv = ["debootstrap", "--variant=minbase", f"--include={','.join(stack.packages)}", str(stack.suite),
            str(root), str(stack.mirror)]
    with open(BUILD_LOG, "a") as log:
        if subprocess.run(argv, stdout=log, stderr=subprocess.STDOUT).returncode != 0:
            raise SystemExit(f"setup: stack {stack.name}: `{' '.join(argv)}` failed; see {BUILD_LOG}")
    return installed_versions(root, stack.packages)


def _build(client: docker.DockerClient, stack: StackData, tag: str) -> dict[str, str]:
    root = paths.STATE / "stacks" / stack.name / "rootfs.build"
    try:
        versions = debootstrap(stack, root)
        labels = {"vmparity.stack": stack.name, "vmparity.stack.versions": json.dumps(versions, sort_keys=True)}
        changes = ["ENTRYPOINT []", *(f"LABEL {k}={json.dumps(v)}" for k, v in labels.items())]
        tar = subprocess.Popen(["tar", "-C", str(root), "--numeric-owner", "-c", "."], stdout=subprocess.PIPE)
        assert tar.stdout is not None
        client.api.import_image_from_stream(tar.stdout, repository=repository(stack), tag=tag.split(":")[1],
                                            changes=changes)
        if tar.wait() != 0:
            raise SystemExit(f"setup: stack {stack.name}: archiving {root} failed")
        return versions
    finally:
        shutil.rmtree(root, ignore_errors=True)


def ensure(client: docker.DockerClient, stack: StackData) -> tuple[str, str]:
    """(image tag, what was done). Older images of the stack are removed once a newer one exists."""
    try:
        versions = mirror_versions(stack)
    except OSError as e:
        cached = _images(client, stack)
        if not cached:
            raise SystemExit(f"setup: stack {stack.name}: cannot read {stack.mirror} ({e}) and no image is cached"
                             ) from e
        newest = max(cached, key=lambda i: i.attrs.get("Created", ""))
        return newest.tags[0], f"mirror unreachable ({e}); kept {newest.tags[0]}"
    tag = f"{repository(stack)}:{key(stack, versions)}"
    try:
        client.images.get(tag)
        done = "cached"
    except docker.errors.ImageNotFound:
        _build(client, stack, tag)
        done = "built"
    for old in _images(client, stack):
        if tag not in old.tags:
            with contextlib.suppress(docker.errors.APIError):  # still in use: the next set-up removes it
                client.images.remove(old.id)
    shown = ", ".join(f"{p} {v}" for p, v in versions.items())
    return tag, f"{done}: {shown}"
