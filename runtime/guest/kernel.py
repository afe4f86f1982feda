"""The guest kernel: Debian's generic amd64 kernel package, unpacked and turned into a PVH-bootable vmlinux.

The generic (not cloud) flavour is used because it has 9p. Its bzImage is XZ-compressed, which costs ~6 s
of decompression per boot under TCG; the vmlinux ELF inside boots through QEMU's PVH entry without it.
"""

from __future__ import annotations

import json
import lzma
import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from runtime.guest.commands import run

META_PACKAGE = "linux-image-amd64"
APT_LISTS = Path("/var/lib/apt/lists")
XZ_MAGIC = b"\xfd7zXZ\x00"
ELF_MAGIC = b"\x7fELF"


@dataclass(frozen=True)
class KernelPackage:
    name: str  # e.g. linux-image-6.1.0-56-amd64
    version: str  # the Debian package version, e.g. 6.1.192-2

    @property
    def abi(self) -> str:
        """The kernel release (`uname -r`), which names /lib/modules/<abi>."""
        return self.name.removeprefix("linux-image-")


def parse_meta_depends(show_output: str) -> KernelPackage:
    """Pick the versioned kernel image out of `apt-cache show linux-image-amd64`."""
    for line in show_output.splitlines():
        if line.startswith("Depends:"):
            m = re.search(r"(linux-image-[0-9][^\s,(]*)\s*\(=\s*([^)\s]+)\)", line)
            if m:
                return KernelPackage(m.group(1), m.group(2))
    raise ValueError(f"no 'Depends: linux-image-<abi> (= <version>)' in apt-cache show {META_PACKAGE}")


def _lists_signature() -> str:
    """Changes whenever `apt-get update` changes the package lists (stat only: cheap)."""
    rows = []
    for p in sorted(APT_LISTS.glob("*Packages*")):
        st = p.stat()
        rows.append(f"{p.name} {st.st_size} {st.st_mtime_ns}")
    return "\n".join(rows)


def resolve(memo: Path, log: Callable[[str], None]) -> KernelPackage:
    """The kernel package linux-image-amd64 currently depends on.

    apt-cache takes ~1 s here (its binary cache is disabled), too slow for the cached path of ensure(),
    so the answer is remembered until the apt package lists change.
    """
    sig = _lists_signature()
    try:
        saved = json.loads(memo.read_text())
        if saved["lists"] == sig:
            return KernelPackage(saved["name"], saved["version"])
    except (OSError, ValueError, KeyError):
        pass
    cmd = ["apt-cache", "show", "--no-all-versions", META_PACKAGE]
    r = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if r.returncode != 0 or "Depends:" not in r.stdout:
        log(f"guest: {META_PACKAGE} unknown to apt, running apt-get update")
        run(["apt-get", "update", "-q"])
        sig = _lists_signature()
        out = run(cmd)
    else:
        out = r.stdout
    pkg = parse_meta_depends(out)
    memo.write_text(json.dumps({"lists": sig, "name": pkg.name, "version": pkg.version}))
    return pkg


def fetch(pkg: KernelPackage, workdir: Path) -> Path:
    """Download and unpack the exact package version; returns the unpacked tree."""
    dl = workdir / "deb"
    dl.mkdir()
    run(["apt-get", "download", "-q", f"{pkg.name}={pkg.version}"], cwd=dl)
    debs = list(dl.glob("*.deb"))
    if len(debs) != 1:
        raise RuntimeError(f"apt-get download {pkg.name}={pkg.version} left {len(debs)} .deb files")
    tree = workdir / "pkg"
    run(["dpkg-deb", "-x", str(debs[0]), str(tree)])
    debs[0].unlink()
    return tree


def extract_vmlinux(bzimage: bytes) -> bytes:
    """The uncompressed ELF kernel inside a bzImage whose payload is XZ.

    The magic can also occur by chance, and the stream is followed by other data, so each candidate is
    tried with a decompressor object (which stops at the end of the stream) until one yields an ELF.
    """
    start = bzimage.find(XZ_MAGIC)
    while start != -1:
        try:
            out = lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(bzimage[start:])
        except lzma.LZMAError:
            out = b""
        if out.startswith(ELF_MAGIC):
            return out
        start = bzimage.find(XZ_MAGIC, start + 1)
    raise ValueError("no XZ stream holding an ELF kernel found in the bzImage")


def config_options(config: Path, names: list[str]) -> dict[str, str]:
    """How each CONFIG_ option is set ('y', 'm', a value, or 'unset')."""
    found = {n: "unset" for n in names}
    for line in config.read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and key in found:
            found[key] = value
    return found

