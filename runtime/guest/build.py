"""Build, cache and locate runvm's guest artifacts: vmlinux, initramfs and read-only OS image.

ensure() is for set-up (slow when something changed, < 1 s when cached); artifacts() is for the runtime
(never builds, fails with instructions). The key returned with the artifacts ties VM snapshots to the
exact artifacts they were made from.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from runtime.guest import cache, initramfs, inputs, kernel, modules, osimage
from runtime.guest.kernel import KernelPackage

# Base command line. No root=: /init mounts the OS disk itself.
#   quiet               kernel chatter on the serial console costs real time under TCG
#   panic=-1            reboot at once on panic, which QEMU's -no-reboot turns into an exit
#   memhp_default_state hot-added memory is usable without a udev rule (CONFIG_MEMORY_HOTPLUG_DEFAULT_ONLINE
#                       is not set in Debian)
#   nowatchdog          a paused, snapshotted or TCG-starved guest is not a locked-up one
#   no_timer_check      skip the timer IRQ sanity check, which is slow and flaky under emulation
BASE_CMDLINE = "console=ttyS0 quiet panic=-1 memhp_default_state=online nowatchdog no_timer_check"
CONFIG_REPORTED = [
    "CONFIG_PVH",
    "CONFIG_VMGENID",
    "CONFIG_HW_RANDOM_VIRTIO",
    "CONFIG_MEMORY_HOTPLUG",
    "CONFIG_MEMORY_HOTREMOVE",
    "CONFIG_ACPI_HOTPLUG_MEMORY",
    "CONFIG_ACPI_HOTPLUG_CPU",
    "CONFIG_HOTPLUG_PCI_ACPI",
    "CONFIG_VIRTIO_MEM",
    "CONFIG_NET_9P",
]
CURRENT = "current.json"
PACKAGE_MEMO = "kernel-package.json"
SETUP_HINT = (
    "run scripts/setup-host (or: .venv/bin/python -c 'from runtime.guest import build; build.ensure()')"
)


class GuestNotBuilt(RuntimeError):
    """The guest artifacts runvm needs are missing or out of date."""


@dataclass(frozen=True)
class GuestArtifacts:
    kernel: Path  # uncompressed vmlinux (ELF), for QEMU's PVH entry via -kernel
    initrd: Path  # uncompressed newc cpio
    osimage: Path  # raw ext4, attach read-only as the first virtio-blk disk
    kernel_version: str  # uname -r in the guest
    key: str  # identifies this exact combination; a VM snapshot is only valid for the same key


def kernel_cmdline(extra: str = "") -> str:
    return f"{BASE_CMDLINE} {extra}".strip()


def ensure(log: Callable[[str], None] = print) -> str:
    """Build whatever is missing, record it as current, prune old entries; returns a one-line summary."""
    root = cache.root()
    with cache.locked(root):
        pkg = kernel.resolve(root / PACKAGE_MEMO, log)
        base_key = inputs.base_key(pkg)
        base = cache.entry(root, "base", base_key)
        built = []
        if not base.is_dir():
            _build_base(root, base, pkg, base_key, log)
            built.append("base")
        agent = inputs.agent_sources()
        pyroute2 = inputs.pyroute2()
        key = inputs.initrd_key(base_key, agent, pyroute2.version, initramfs.BUSYBOX)
        initrd = cache.entry(root, "initrd", key)
        if not initrd.is_dir():
            _build_initrd(root, initrd, base, agent, pyroute2, log)
            built.append("initramfs")
        _write_json(root / CURRENT, {
            "base": base.name, "base_key": base_key, "initrd": initrd.name, "key": key,
            "package": pkg.name, "package_version": pkg.version,
        })
        for path in (base, initrd):
            cache.touch(path)
        cache.prune(root, "base", [base.name])
        cache.prune(root, "initrd", [initrd.name])
    done = f"built {' and '.join(built)}" if built else "cached"
    return f"{root} key {key[:12]} (kernel {pkg.abi}, {done})"


def artifacts() -> GuestArtifacts:
    """The artifacts for the current recipe and agent sources, or GuestNotBuilt saying what is missing."""
    root = cache.root()
    try:
        current = json.loads((root / CURRENT).read_text())
    except (OSError, ValueError) as e:
        raise GuestNotBuilt(
            f"runvm's guest (kernel, initramfs, OS image) is not built: cannot read {root / CURRENT} ({e}); "
            + SETUP_HINT
        ) from None
    pkg = KernelPackage(current["package"], current["package_version"])
    base = root / current["base"]
    if current["base_key"] != inputs.base_key(pkg):
        raise GuestNotBuilt(f"runvm's guest recipe or build code changed since {base} was built; " + SETUP_HINT)
    agent = inputs.agent_sources()
    key = inputs.initrd_key(current["base_key"], agent, inputs.pyroute2().version, initramfs.BUSYBOX)
    initrd = cache.entry(root, "initrd", key)
    found = GuestArtifacts(
        kernel=base / "vmlinux",
        initrd=initrd / "initrd.cpio",
        osimage=base / "os.img",
        kernel_version=pkg.abi,
        key=key,
    )
    missing = [str(p) for p in (found.kernel, found.osimage) if not p.is_file()]
    if missing:
        raise GuestNotBuilt(f"runvm's guest is incomplete, missing {', '.join(missing)}; " + SETUP_HINT)
    if not found.initrd.is_file():
        raise GuestNotBuilt(
            f"runvm's guest initramfs for the current agent sources ({len(agent)} files under "
            f"{inputs.AGENT_SRC}) and /init is not built (expected {found.initrd}); " + SETUP_HINT
        )
    return found


def _build_base(root: Path, dest: Path, pkg: KernelPackage, key: str, log: Callable[[str], None]) -> None:
    """Kernel, modules and OS image: minutes (debootstrap dominates), only when the recipe changes."""
    started = time.monotonic()
    with cache.staging(root, "base") as tmp:
        out = tmp / "out"
        out.mkdir()
        log(f"guest: fetching {pkg.name} {pkg.version}")
        tree = kernel.fetch(pkg, tmp)
        config = tree / f"boot/config-{pkg.abi}"
        options = kernel.config_options(config, CONFIG_REPORTED)
        if options["CONFIG_PVH"] != "y":
            raise RuntimeError(f"{pkg.name} lacks CONFIG_PVH=y: QEMU cannot boot its vmlinux directly")
        shutil.copyfile(config, out / "config")
        (out / "vmlinux").write_bytes(kernel.extract_vmlinux((tree / f"boot/vmlinuz-{pkg.abi}").read_bytes()))
        sel = modules.install(tree, pkg.abi, modules.parse_recipe(inputs.MODULES.read_text()), out / "modules")
        cache.remove_tree(tree)
        source = osimage.mirror()
        log(f"guest: debootstrap {osimage.SUITE} from {source} (takes a few minutes)")
        os_root = tmp / "root"
        osimage.bootstrap(os_root, osimage.packages(inputs.PACKAGES), source)
        cache.unmount_under(os_root)
        shutil.copytree(out / "modules/lib/modules", os_root / "lib/modules", dirs_exist_ok=True)
        osimage.slim(os_root)
        guest_python = osimage.python_version(os_root)
        size = osimage.pack(os_root, out / "os.img", key)
        cache.remove_tree(os_root)
        _write_json(out / "meta.json", {
            "key": key, "package": pkg.name, "package_version": pkg.version, "kernel_version": pkg.abi,
            "modules_loaded": [w.name for w in sel.load], "modules_builtin": sel.builtin,
            "modules_absent": sel.absent, "config": options, "guest_python": guest_python,
            "os_image_bytes": size, "mirror": source, "seconds": round(time.monotonic() - started, 1),
        })
        cache.publish(out, dest)
    log(f"guest: base built in {time.monotonic() - started:.0f} s: {dest}")


def _build_initrd(
    root: Path,
    dest: Path,
    base: Path,
    agent: dict[str, bytes],
    pyroute2: inputs.Pyroute2,
    log: Callable[[str], None],
) -> None:
    """busybox + modules + /init + agent + pyroute2: seconds, whenever the agent changes."""
    started = time.monotonic()
    initramfs.check_busybox()
    guest_python = json.loads((base / "meta.json").read_text())["guest_python"]
    with cache.staging(root, "initrd") as tmp:
        tree, out = tmp / "tree", tmp / "out"
        tree.mkdir()
        out.mkdir()
        facts = initramfs.assemble(
            tree,
            modules_tree=base / "modules",
            init_script=inputs.INIT,
            agent=agent,
            pyroute2_pkg=pyroute2.path,
            guest_python=guest_python,
        )
        members = initramfs.archive(tree, out / "initrd.cpio")
        _write_json(out / "meta.json", {
            "base": base.name, "pyroute2": pyroute2.version, "members": members,
            "bytes": (out / "initrd.cpio").stat().st_size, **facts,
            "seconds": round(time.monotonic() - started, 2),
        })
        cache.publish(out, dest)
    if not agent:
        log(f"guest: warning: no agent sources under {inputs.AGENT_SRC}; the guest can only run the probe")
    log(f"guest: initramfs built in {time.monotonic() - started:.1f} s: {dest}")


def _write_json(path: Path, data: dict[str, object]) -> None:
    """Replace a small JSON file atomically, so concurrent readers see the old or the new one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    os.replace(tmp, path)
