"""Choosing the kernel modules the guest loads, and laying them out so busybox modprobe finds them.

The kernel package ships no modules.dep (its postinst runs depmod), so depmod runs once on the whole
package to learn dependencies, and again on the reduced set that goes into the initramfs.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from runtime.guest.commands import run

LOAD_LIST = Path("etc/vmparity/modules.load")
COPIED_INDEXES = ("modules.builtin", "modules.builtin.modinfo", "modules.order")


@dataclass(frozen=True)
class Wanted:
    name: str
    required: bool


@dataclass
class Selection:
    load: list[Wanted] = field(default_factory=list)  # modular, in load order
    builtin: list[str] = field(default_factory=list)
    absent: list[str] = field(default_factory=list)  # optional and not in this kernel
    files: set[str] = field(default_factory=set)  # .ko paths relative to /lib/modules/<abi>


def canonical(name: str) -> str:
    """Module names treat '-' and '_' alike (virtio-rng.ko is the module virtio_rng)."""
    return name.replace("-", "_")


def _name_of(relpath: str) -> str:
    return canonical(Path(relpath).name.split(".ko")[0])


def parse_recipe(text: str) -> list[Wanted]:
    """`name` is required, `name?` optional; blank lines and '#' comments are ignored."""
    wanted = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            optional = line.endswith("?")
            wanted.append(Wanted(canonical(line.rstrip("?")), not optional))
    return wanted


def parse_dep(text: str) -> dict[str, tuple[str, list[str]]]:
    """modules.dep as name -> (its path, the paths of everything it needs, transitively)."""
    index = {}
    for line in text.splitlines():
        path, sep, deps = line.partition(":")
        if sep:
            index[_name_of(path)] = (path.strip(), deps.split())
    return index


def parse_builtin(text: str) -> set[str]:
    return {_name_of(line.strip()) for line in text.splitlines() if line.strip()}


def select(wanted: list[Wanted], dep: dict[str, tuple[str, list[str]]], builtin: set[str]) -> Selection:
    """Sort the wanted modules into loadable, built-in and absent; a missing required one is an error."""
    sel = Selection()
    missing = []
    for w in wanted:
        if w.name in builtin:
            sel.builtin.append(w.name)
        elif w.name in dep:
            path, deps = dep[w.name]
            sel.load.append(w)
            sel.files.update([path, *deps])
        elif w.required:
            missing.append(w.name)
        else:
            sel.absent.append(w.name)
    if missing:
        raise RuntimeError(f"kernel has neither built in nor as a module: {', '.join(missing)}")
    return sel


def modules_dir(tree: Path, abi: str) -> Path:
    """/lib/modules/<abi> of an unpacked package, which may use the merged-/usr layout."""
    for candidate in (tree / "lib/modules" / abi, tree / "usr/lib/modules" / abi):
        if candidate.is_dir():
            return candidate
    raise RuntimeError(f"no lib/modules/{abi} in the unpacked kernel package {tree}")


def install(pkg_tree: Path, abi: str, wanted: list[Wanted], dest: Path) -> Selection:
    """Copy the wanted modules and their dependencies to dest/lib/modules/<abi>, index them, and write
    dest/etc/vmparity/modules.load for /init."""
    src = modules_dir(pkg_tree, abi)
    if not (pkg_tree / "lib/modules" / abi).is_dir():
        (pkg_tree / "lib").mkdir(exist_ok=True)
        (pkg_tree / "lib/modules").symlink_to(src.parent)
    run(["depmod", "-b", str(pkg_tree), abi])
    sel = select(
        wanted,
        parse_dep((src / "modules.dep").read_text()),
        parse_builtin((src / "modules.builtin").read_text()),
    )
    out = dest / "lib/modules" / abi
    out.mkdir(parents=True)
    for rel in sorted(sel.files):
        target = out / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src / rel, target)
    for name in COPIED_INDEXES:
        if (src / name).exists():
            shutil.copy2(src / name, out / name)
    run(["depmod", "-b", str(dest), abi])
    listing = dest / LOAD_LIST
    listing.parent.mkdir(parents=True)
    listing.write_text(
        "".join(f"{w.name} {'required' if w.required else 'optional'}\n" for w in sel.load)
    )
    return sel
