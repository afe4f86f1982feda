"""VM templating: clones of one snapshot are unique, and a broken template is rebuilt or bypassed with a log
line, never a failed container. Uses a private template directory (RUNVM_TEMPLATES), built once."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.runvm.conftest import RUNVM, BundleFactory, Runvm

pytestmark = pytest.mark.slow

PROBE = ("cat /proc/sys/kernel/random/boot_id; head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \\n'; echo; "
         "date +%s")


MEMCG = Path("/sys/fs/cgroup/memory")


@pytest.fixture(scope="module")
def build(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, int]]:
    """The private template, built by a builder started inside a memory cgroup, as a vm-shim starts one in its
    container's; returns the store and what that cgroup is charged once the builder is done."""
    d = tmp_path_factory.mktemp("templates")
    env = {**os.environ, "RUNVM_TEMPLATES": str(d)}
    cg = MEMCG / f"vmparity-test-builder-{os.getpid()}"
    cg.mkdir()
    try:
        subprocess.run([RUNVM, "template", "build", "--quiet"], env=env, check=True, timeout=300,
                       preexec_fn=lambda: (cg / "cgroup.procs").write_text(str(os.getpid())))
        charged = int((cg / "memory.usage_in_bytes").read_text())
    finally:
        cg.rmdir()
    yield d, charged
    shutil.rmtree(d, ignore_errors=True)  # its RAM file is 512 MiB, all allocated: not left to pytest's tmp retention


@pytest.fixture(scope="module")
def templates(build: tuple[Path, int]) -> Path:
    return build[0]


def test_a_builder_started_in_a_containers_cgroup_charges_it_nothing(build: tuple[Path, int]) -> None:
    """The template's RAM (512 MiB, all of it allocated) must not be charged to the container whose cold start
    started the build: on tmpfs it would stay there, and count against the container's memory limit."""
    store, charged = build
    memory = _template_dir(store) / "memory"
    assert os.stat(memory).st_blocks * 512 >= os.stat(memory).st_size
    assert charged < 16 << 20, f"{charged / (1 << 20):.1f} MiB charged to the cgroup the builder started in"


@pytest.fixture
def private_templates(templates: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("RUNVM_TEMPLATES", str(templates))
    monkeypatch.setenv("RUNVM_NO_TEMPLATE_BUILD", "1")  # no detached builder may outlive the test
    return templates


def _template_dir(templates: Path) -> Path:
    dirs = [d for d in templates.iterdir() if d.is_dir() and not d.name.startswith(".")]
    assert len(dirs) == 1, dirs
    return dirs[0]


def _run(runvm: Runvm, make_bundle: BundleFactory, cid: str) -> tuple[list[str], dict]:
    rc, out, err = runvm.create(cid, make_bundle(cid, ["sh", "-c", PROBE]))
    assert rc == 0, f"create failed: {runvm.errors()} {err.read_text()[-500:]}"
    boot = runvm.state(cid)["runvm"]
    assert runvm("start", cid).returncode == 0
    runvm.wait_status(cid, "stopped", timeout=30)
    lines = out.read_text().split()
    runvm("delete", cid)
    return lines, boot


def test_two_clones_share_no_randomness_and_have_the_hosts_clock(private_templates: Path, runvm: Runvm,
                                                                   make_bundle: BundleFactory) -> None:
    (boot_a, rand_a, clock_a), info_a = _run(runvm, make_bundle, "clone-a")
    (boot_b, rand_b, clock_b), info_b = _run(runvm, make_bundle, "clone-b")
    assert info_a["boot"] == info_b["boot"] == "templated"
    assert boot_a != boot_b
    assert rand_a != rand_b and len(rand_a) == 64
    for clock in (clock_a, clock_b):
        assert abs(int(clock) - time.time()) < 30


def test_template_build_prunes_templates_nothing_uses(private_templates: Path) -> None:
    """Keys change with every agent, kernel or QEMU update: the builder removes the ones left behind."""
    stale = private_templates / "0123456789abcdef0123"
    stale.mkdir()
    (stale / "memory").write_bytes(b"\0" * 4096)
    (stale / "meta.json").write_text("{}")
    os.utime(stale / "meta.json", (0, 0))
    current = _template_dir_except(private_templates, stale.name)
    out = subprocess.run([RUNVM, "template", "build"], capture_output=True, text=True, check=True, timeout=300)
    report = json.loads(out.stdout)
    assert report["status"] == "ok" and report["pruned"] == [stale.name]
    assert not stale.exists() and current.exists()
    assert not [p for p in private_templates.iterdir() if p.name.startswith(".pruned-")]


def _template_dir_except(templates: Path, name: str) -> Path:
    dirs = [d for d in templates.iterdir() if d.is_dir() and not d.name.startswith(".") and d.name != name]
    assert len(dirs) == 1, dirs
    return dirs[0]


def test_corrupt_device_state_is_bypassed(private_templates: Path, runvm: Runvm, make_bundle: BundleFactory) -> None:
    state = _template_dir(private_templates) / "state"
    original = state.read_bytes()
    st = state.stat()
    try:
        # same size, inode and mtime: only the checksum can tell
        state.write_bytes(original[:1000] + bytes(b ^ 0xFF for b in original[1000:1100]) + original[1100:])
        os.utime(state, ns=(st.st_atime_ns, st.st_mtime_ns))
        lines, boot = _run(runvm, make_bundle, "corrupt-state")
        assert boot["boot"] == "cold" and "corrupt" in boot["boot_reason"]
        assert len(lines) == 3
        assert any("cold boot" in rec["msg"] and "corrupt" in rec["msg"] for rec in runvm.log_lines())
    finally:
        state.write_bytes(original)
        os.utime(state)  # the fingerprint changed: rebuild below


def test_missing_memory_file_is_bypassed(private_templates: Path, runvm: Runvm, make_bundle: BundleFactory) -> None:
    memory = _template_dir(private_templates) / "memory"
    memory.unlink()
    lines, boot = _run(runvm, make_bundle, "missing-memory")
    assert boot["boot"] == "cold" and "memory missing" in boot["boot_reason"]
    assert len(lines) == 3


def test_a_template_whose_guest_does_not_answer_is_discarded(templates: Path, private_templates: Path,
                                                             runvm: Runvm, make_bundle: BundleFactory) -> None:
    """Garbage in the RAM file passes the cheap checks; the restored guest does not answer and the create
    falls back to a cold boot, discarding the template so the next create rebuilds it."""
    subprocess.run([RUNVM, "template", "remove"], check=True)
    subprocess.run([RUNVM, "template", "build", "--quiet"], check=True, timeout=300)
    tdir = _template_dir(private_templates)
    memory = tdir / "memory"
    meta_before = (tdir / "meta.json").read_text()
    fingerprint = memory.stat()
    with open(memory, "r+b") as f:  # the first 64 MiB: the kernel's text and data live there
        for offset in range(0, 64 << 20, 4096):
            f.seek(offset)
            f.write(b"\xcc" * 64)
    os.utime(memory, ns=(fingerprint.st_atime_ns, fingerprint.st_mtime_ns))
    assert (tdir / "meta.json").read_text() == meta_before
    lines, boot = _run(runvm, make_bundle, "bad-guest")
    assert boot["boot"] == "cold" and "failed" in boot["boot_reason"]
    assert len(lines) == 3
    assert not tdir.exists(), "the broken template must be discarded"
