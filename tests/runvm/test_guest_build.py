"""runvm's guest build: the pure logic (kernel extraction, cache keys, module selection, cpio, errors) and,
marked slow, a real TCG boot of the built artifacts into the OS image's Python."""

from __future__ import annotations

import json
import lzma
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from runtime.guest import build, cache, cpio, inputs, kernel, modules, osimage
from runtime.guest.kernel import KernelPackage

ELF = b"\x7fELF\x02\x01\x01" + bytes(range(256)) * 64


def test_extract_vmlinux_skips_false_magic_and_trailing_data() -> None:
    stream = lzma.compress(ELF, format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC32)
    blob = b"MZ" + b"\0" * 500 + kernel.XZ_MAGIC + b"not a stream" + b"\x90" * 99 + stream + b"\xff trailer" * 50
    assert kernel.extract_vmlinux(blob) == ELF


def test_extract_vmlinux_rejects_a_payload_that_is_not_elf() -> None:
    blob = b"header" + lzma.compress(b"just text", format=lzma.FORMAT_XZ)
    with pytest.raises(ValueError, match="ELF"):
        kernel.extract_vmlinux(blob)
    with pytest.raises(ValueError):
        kernel.extract_vmlinux(b"no xz here at all")


def test_kernel_package_comes_from_the_meta_package_dependency() -> None:
    show = "Package: linux-image-amd64\nVersion: 6.1.192-2\nDepends: linux-image-6.1.0-56-amd64 (= 6.1.192-2)\n"
    pkg = kernel.parse_meta_depends(show)
    assert pkg == KernelPackage("linux-image-6.1.0-56-amd64", "6.1.192-2")
    assert pkg.abi == "6.1.0-56-amd64"
    with pytest.raises(ValueError):
        kernel.parse_meta_depends("Package: linux-image-amd64\n")


def test_initrd_key_follows_the_agent_sources(tmp_path: Path) -> None:
    busybox = tmp_path / "busybox"
    busybox.write_bytes(b"static busybox")
    src = tmp_path / "agent"

    def key(version: str = "0.9.7") -> str:
        return inputs.initrd_key("base", inputs.agent_sources(src), version, busybox)

    missing = key()
    src.mkdir()
    assert key() == missing  # an empty agent directory is the same as none
    (src / "__main__.py").write_text("print('agent')\n")
    one = key()
    assert one != missing
    (src / "__pycache__").mkdir()
    (src / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"cache")
    (src / "notes.txt").write_text("not python")
    assert key() == one
    (src / "__main__.py").write_text("print('agent v2')\n")
    two = key()
    assert two != one
    (src / "__main__.py").rename(src / "main.py")
    assert key() != two
    assert key("0.9.8") != key()
    assert inputs.initrd_key("other base", inputs.agent_sources(src), "0.9.7", busybox) != key()


def test_agent_sources_include_subpackages(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "__init__.py").write_text("")
    (tmp_path / "sub" / "mod.py").write_text("x = 1\n")
    assert sorted(inputs.agent_sources(tmp_path)) == ["__init__.py", "sub/mod.py"]


def test_artifacts_says_what_is_missing_and_how_to_build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VMPARITY_GUEST_CACHE", str(tmp_path))
    with pytest.raises(build.GuestNotBuilt, match=r"not built.*scripts/setup-host"):
        build.artifacts()

    pkg = KernelPackage("linux-image-6.1.0-56-amd64", "6.1.192-2")
    base_key = inputs.base_key(pkg)
    base = cache.entry(tmp_path, "base", base_key)
    current = {"base": base.name, "base_key": base_key, "initrd": "initrd-x", "key": "x",
               "package": pkg.name, "package_version": pkg.version}
    (tmp_path / build.CURRENT).write_text(json.dumps(current))
    with pytest.raises(build.GuestNotBuilt, match=r"missing .*vmlinux.*scripts/setup-host"):
        build.artifacts()

    base.mkdir()
    (base / "vmlinux").write_bytes(ELF)
    (base / "os.img").write_bytes(b"")
    with pytest.raises(build.GuestNotBuilt, match="initramfs for the current agent sources"):
        build.artifacts()

    key = inputs.initrd_key(base_key, inputs.agent_sources(), inputs.pyroute2().version, Path("/bin/busybox"))
    initrd = cache.entry(tmp_path, "initrd", key)
    initrd.mkdir()
    (initrd / "initrd.cpio").write_bytes(b"")
    found = build.artifacts()
    assert found.key == key and found.kernel_version == "6.1.0-56-amd64"
    assert found.initrd.parent == initrd and found.osimage.parent == base

    (tmp_path / build.CURRENT).write_text(json.dumps({**current, "base_key": "stale"}))
    with pytest.raises(build.GuestNotBuilt, match="recipe or build code changed"):
        build.artifacts()


def test_kernel_cmdline_leaves_the_root_to_init() -> None:
    line = build.kernel_cmdline("vmparity.probe=1")
    words = line.split()
    assert "console=ttyS0" in words and "panic=-1" in words and "quiet" in words
    assert "memhp_default_state=online" in words
    assert words[-1] == "vmparity.probe=1"
    assert not any(w.startswith("root=") for w in words)
    assert build.kernel_cmdline() == build.BASE_CMDLINE


def test_module_selection_sorts_builtin_modular_and_absent() -> None:
    dep = modules.parse_dep(
        "kernel/fs/ext4/ext4.ko: kernel/lib/crc16.ko kernel/fs/jbd2/jbd2.ko\n"
        "kernel/lib/crc16.ko:\nkernel/fs/jbd2/jbd2.ko:\n"
        "kernel/drivers/char/hw_random/virtio-rng.ko: kernel/drivers/virtio/virtio.ko\n"
        "kernel/drivers/virtio/virtio.ko:\n"
    )
    builtin = modules.parse_builtin("kernel/drivers/virt/vmgenid.ko\n")
    wanted = modules.parse_recipe("# comment\next4\nvirtio_rng?  # trailing comment\nvmgenid?\nnot_here?\n")
    sel = modules.select(wanted, dep, builtin)
    assert [w.name for w in sel.load] == ["ext4", "virtio_rng"]
    assert [w.required for w in sel.load] == [True, False]
    assert sel.builtin == ["vmgenid"] and sel.absent == ["not_here"]
    assert "kernel/fs/jbd2/jbd2.ko" in sel.files and "kernel/drivers/virtio/virtio.ko" in sel.files
    with pytest.raises(RuntimeError, match="not_here"):
        modules.select(modules.parse_recipe("not_here\n"), dep, builtin)


def test_recipe_loads_criu_modules_in_the_order_criu_needs() -> None:
    names = [w.name for w in modules.parse_recipe(inputs.MODULES.read_text())]
    criu = ["crc32c_generic", "libcrc32c", "nfnetlink", "nf_tables"]
    assert [names.index(n) for n in criu] == sorted(names.index(n) for n in criu)
    for needed in ("virtio_pci", "virtio_blk", "ext4", "9p", "9pnet_virtio", "virtio_console", "virtio_net"):
        assert needed in names
    assert names.index("virtio_pci") < names.index("virtio_blk") < names.index("ext4")


def test_init_script_parses_and_never_touches_boot_id() -> None:
    text = inputs.INIT.read_text()
    assert "kernel/random" not in text and "urandom" not in text
    if shutil.which("busybox"):
        subprocess.run(["busybox", "sh", "-n", str(inputs.INIT)], check=True)


def test_cpio_holds_files_links_dirs_and_device_nodes(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "bin").mkdir(parents=True)
    (tree / "bin/tool").write_bytes(b"#!/bin/sh\necho hi\n")
    (tree / "bin/tool").chmod(0o755)
    (tree / "bin/alias").symlink_to("tool")
    (tree / "empty").mkdir()
    out = tmp_path / "a.cpio"
    with open(out, "wb") as f:
        count = cpio.write(f, tree, {"dev/console": cpio.Node(0o020600, 5, 1)})
    assert count == 5
    assert out.stat().st_size % 4 == 0
    if shutil.which("cpio"):
        listing = subprocess.run(["cpio", "-itv"], input=out.read_bytes(), capture_output=True,
                                 check=True).stdout.decode().splitlines()
        names = [line.split()[-1] if "->" not in line else line.split()[-3] for line in listing]
        assert names == ["bin", "bin/alias", "bin/tool", "dev/console", "empty"]
        kinds = {n: line[0] for n, line in zip(names, listing, strict=True)}
        assert kinds == {"bin": "d", "bin/alias": "l", "bin/tool": "-", "dev/console": "c", "empty": "d"}
        extract = tmp_path / "x"
        extract.mkdir()
        subprocess.run(["cpio", "-id", "--quiet", "bin/tool"], cwd=extract, input=out.read_bytes(), check=True)
        assert (extract / "bin/tool").read_bytes() == b"#!/bin/sh\necho hi\n"


def test_mirror_is_the_first_uris_of_the_host_sources(tmp_path: Path) -> None:
    sources = tmp_path / "debian.sources"
    sources.write_text("Types: deb\n# URIs: http://commented.invalid/\nURIs: http://mirror.invalid/debian "
                       "http://second.invalid/\nSuites: bookworm\n\nTypes: deb\nURIs: http://security.invalid/\n")
    assert osimage.mirror(sources) == "http://mirror.invalid/debian"
    assert osimage.mirror(tmp_path / "absent") == osimage.FALLBACK_MIRROR


def test_prune_keeps_the_named_and_newest_entries(tmp_path: Path) -> None:
    for i, name in enumerate(["base-a", "base-b", "base-c", "base-d"]):
        (tmp_path / name).mkdir()
        os.utime(tmp_path / name, (1000 + i, 1000 + i))
    (tmp_path / ".tmp-base-dead").mkdir()
    removed = cache.prune(tmp_path, "base", ["base-a"])
    assert sorted(removed) == ["base-b", "base-c"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["base-a", "base-d"]


def _boot(art: build.GuestArtifacts, log: Path, cmdline: str, with_disk: bool,
          timeout: float = 90) -> tuple[float, str]:
    """Boot the built guest under TCG the way runvm does; on timeout kill only the QEMU started here."""
    argv = ["qemu-system-x86_64", "-M", "pc", "-cpu", "qemu64", "-nodefaults", "-no-user-config", "-nographic",
            "-m", "512", "-smp", "1", "-kernel", str(art.kernel), "-initrd", str(art.initrd), "-append", cmdline,
            "-serial", f"file:{log}", "-no-reboot"]
    if with_disk:
        argv += ["-drive", f"file={art.osimage},if=none,id=os,format=raw,readonly=on",
                 "-device", "virtio-blk-pci,drive=os"]
    started = time.monotonic()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        pytest.fail(f"QEMU did not exit within {timeout} s; console:\n{log.read_text(errors='replace')[-3000:]}")
    wall = time.monotonic() - started
    assert proc.returncode == 0, f"QEMU failed ({proc.returncode}): {err.decode(errors='replace')}"
    return wall, log.read_text(errors="replace")


@pytest.fixture(scope="module")
def built() -> build.GuestArtifacts:
    if shutil.which("qemu-system-x86_64") is None:
        pytest.skip("qemu-system-x86_64 is not installed (scripts/setup-host installs it)")
    if os.geteuid() != 0:
        try:
            return build.artifacts()
        except build.GuestNotBuilt as e:
            pytest.skip(str(e))
    build.ensure(log=print)
    started = time.monotonic()
    build.ensure(log=print)
    assert time.monotonic() - started < 1.0, "ensure() must be fast once everything is cached"
    return build.artifacts()


@pytest.mark.slow
def test_guest_boots_into_the_os_images_python(built: build.GuestArtifacts, tmp_path: Path) -> None:
    wall, console = _boot(built, tmp_path / "console.log", build.kernel_cmdline("vmparity.probe=1"), with_disk=True)
    assert "VMPARITY-PYTHON-OK" in console, console[-3000:]
    assert "VMPARITY-PYROUTE2-OK" in console, console[-3000:]
    assert "vmparity-init: probe done" in console
    print(f"guest probe boot: {wall:.1f} s wall")


@pytest.mark.slow
def test_guest_without_its_disk_says_so_and_powers_off(built: build.GuestArtifacts, tmp_path: Path) -> None:
    _, console = _boot(built, tmp_path / "console.log", build.kernel_cmdline("vmparity.probe=1"), with_disk=False)
    assert "vmparity-init: FAILED: no OS disk /dev/vda" in console, console[-3000:]
