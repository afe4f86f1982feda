"""The criu set-up installs (harness/setup/criu.py) checkpoints and restores under plain runc on this kernel: the
runc baseline of the checkpoint scenario depends on it. First Docker-free: runc with a hand-made bundle whose rootfs
is the host's busybox-static, and `runc --criu <launcher>`; then `docker checkpoint` through a disposable dockerd,
which starts with the launcher's directory first on PATH as the host's does (harness/setup/dockerd.py), so runc
finds it through containerd and the shim. Neither touches the host's dockerd."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from harness import labels
from harness.checkpoint_upload import start_from_checkpoint
from harness.daemon import DisposableDaemon
from harness.setup import criu, dockerd
from harness.setup.images import IMAGE

BUSYBOX = Path("/bin/busybox")
COUNTER = "i=0; while :; do i=$((i+1)); echo $i >> /tmp/count; sleep 0.1; done"

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("runc") or not BUSYBOX.exists(),
                                reason="needs root, runc and busybox-static (scripts/setup-host)")


def counted(rootfs: Path) -> list[int]:
    try:
        return [int(x) for x in (rootfs / "tmp/count").read_text().split() if x.isdigit()]
    except OSError:
        return []


def wait_for(probe: Callable[[], list[int]], until: Callable[[list[int]], bool], timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if until(value) or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


class Runc:
    """runc with a private --root and the installed criu, so nothing is shared with Docker's runc state."""

    def __init__(self, root: Path, launcher: Path) -> None:
        self.root, self.launcher = root, launcher

    def __call__(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["runc", "--root", str(self.root), "--criu", str(self.launcher), *args],
                              capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)

    def ok(self, *args: str) -> str:
        r = self(*args)
        assert r.returncode == 0, f"runc {' '.join(args)}: exit {r.returncode}: {r.stderr.strip()}"
        return r.stdout

    def detached(self, *args: str) -> None:
        """run -d / restore -d: the container inherits runc's stdio, so that is /dev/null (criu dumps a host char
        device; a host file or pipe it cannot, and a pipe would hold us until the container exits); runc's errors
        go to --log."""
        log = self.root.parent / "runc.log"
        rc = subprocess.run(["runc", "--root", str(self.root), "--log", str(log), "--criu", str(self.launcher),
                             *args], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            timeout=120).returncode
        assert rc == 0, f"runc {' '.join(args)}: exit {rc}: {log.read_text()[-2000:] if log.exists() else ''}"

    def status(self, cid: str) -> str | None:
        r = self("state", cid)
        return json.loads(r.stdout)["status"] if r.returncode == 0 else None


@pytest.fixture
def work() -> Iterator[Path]:
    """A scratch directory outside pytest's tmp (criu's images and the bundle), removed even on failure."""
    d = Path(f"/var/tmp/vmparity-criu-test-{secrets.token_hex(3)}")
    d.mkdir()
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def runc(work: Path) -> Iterator[Runc]:
    launcher = criu.launcher()
    assert launcher.exists(), f"{launcher} is missing: run scripts/setup-host (harness/setup/criu.py)"
    rc = Runc(work / "runc-root", launcher)
    yield rc
    if rc.root.exists():
        for cid in os.listdir(rc.root):
            rc("delete", "--force", cid)


def bundle(work: Path) -> Path:
    """busybox-static as the whole rootfs; runc's default spec with the counter as the process."""
    b = work / "bundle"
    (b / "rootfs/bin").mkdir(parents=True)
    for d in ("tmp", "proc", "dev", "sys"):
        (b / "rootfs" / d).mkdir()
    shutil.copy2(BUSYBOX, b / "rootfs/bin/busybox")
    for applet in ("sh", "sleep"):
        (b / "rootfs/bin" / applet).symlink_to("busybox")
    subprocess.run(["runc", "spec", "--bundle", str(b)], check=True)
    spec = json.loads((b / "config.json").read_text())
    spec["process"].update(terminal=False, args=["sh", "-c", COUNTER])
    spec["root"] = {"path": "rootfs", "readonly": False}
    (b / "config.json").write_text(json.dumps(spec, indent=1))
    return b


def test_installed_criu_is_trixies_and_checks() -> None:
    assert int((criu.version() or "0").split(".")[0]) >= 4, criu.version()
    ok, out = criu.check()
    assert ok, out


def test_runc_checkpoint_and_restore_resume_the_counter(work: Path, runc: Runc) -> None:
    """checkpoint stops the container at its last written value; restore goes on from exactly the next one."""
    b = bundle(work)
    rootfs, cid = b / "rootfs", f"vmparity-criu-{secrets.token_hex(3)}"
    runc.detached("run", "-d", "--bundle", str(b), cid)
    assert len(wait_for(lambda: counted(rootfs), lambda v: len(v) >= 5, timeout=20)) >= 5

    images = work / "images"
    runc.ok("checkpoint", "--image-path", str(images), cid)
    assert runc.status(cid) is None, "runc checkpoint (without --leave-running) should have removed the container"
    saved = counted(rootfs)
    time.sleep(0.5)
    assert counted(rootfs) == saved, "the counter kept going after the checkpoint"

    runc.detached("restore", "-d", "--image-path", str(images), "--bundle", str(b), cid)
    assert runc.status(cid) == "running"
    after = wait_for(lambda: counted(rootfs)[len(saved):], lambda v: len(v) >= 3, timeout=20)
    assert after[:1] == [saved[-1] + 1], f"saved at {saved[-1]}, written after the restore: {after}"
    values = counted(rootfs)
    assert values == list(range(1, len(values) + 1)), f"not one unbroken count: {values}"


@pytest.mark.disposable
@pytest.mark.slow
def test_docker_checkpoint_under_a_dockerd_with_the_launcher_on_path() -> None:
    """The whole chain: dockerd's PATH -> containerd -> shim -> runc -> the installed criu."""
    d = DisposableDaemon(labels.new_run_id())
    d.start()
    try:
        env = dockerd.environ(d.record.pid or 0)
        assert env is not None and dockerd.criu_first(env), (env or {}).get("PATH")
        c = d.client.containers.run(f"{IMAGE}:latest", ["sh", "-c", COUNTER.replace(" >> /tmp/count", "")],
                                    detach=True, runtime="runc", network_mode="none")

        def printed() -> list[int]:
            return [int(x) for x in c.logs(stderr=False).split() if x.isdigit()]

        def run(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(["docker", "-H", d.host, *args], capture_output=True, text=True, timeout=120)

        def cli(*args: str) -> None:
            r = run(*args)
            assert r.returncode == 0, f"docker {' '.join(args)}: exit {r.returncode}: {r.stderr.strip()}"

        assert len(wait_for(printed, lambda v: len(v) >= 5, timeout=20)) >= 5
        cli("checkpoint", "create", c.id, "cp1")
        c.reload()
        assert c.status == "exited"
        saved = printed()
        # containerd's stale checkpoint blob (harness/checkpoint_upload.py) is a Docker race, not criu's doing
        r, _ = start_from_checkpoint(lambda: run("start", "--checkpoint", "cp1", c.id))
        assert r.returncode == 0, f"docker start --checkpoint: exit {r.returncode}: {r.stderr.strip()}"
        after = wait_for(lambda: printed()[len(saved):], lambda v: len(v) >= 3, timeout=20)
        assert after[:1] == [saved[-1] + 1], f"saved at {saved[-1]}, printed after the restore: {after}"
    finally:
        left = d.stop()
    assert left == [], f"the disposable dockerd left: {left}"
