"""A minimal PVH-bootable ELF for VMs restored from a template.

QEMU keeps -kernel and -initrd in its own heap for the firmware to copy at boot (65 MB for the Debian vmlinux,
private to every QEMU). A restored guest never boots, but QEMU must still register the same PVH option ROM the
template had, which it does for any ELF carrying a Xen PVH entry note: this one is 4 KiB of ELF plus `hlt`."""

from __future__ import annotations

import os
import struct
import tempfile
from pathlib import Path

ENTRY = 0x100000
XEN_ELFNOTE_PHYS32_ENTRY = 18


def image() -> bytes:
    code = b"\xf4\xeb\xfd"  # hlt; jmp back to hlt
    name = b"Xen\0"
    note = struct.pack("<III", len(name), 4, XEN_ELFNOTE_PHYS32_ENTRY) + name + struct.pack("<I", ENTRY)
    phoff, phnum = 64, 2
    note_off = phoff + 56 * phnum
    code_off = 0x1000
    ehdr = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8) + struct.pack(
        "<HHIQQQIHHHHHH", 2, 62, 1, ENTRY, phoff, 0, 0, 64, 56, phnum, 0, 0, 0)
    load = struct.pack("<IIQQQQQQ", 1, 5, code_off, ENTRY, ENTRY, len(code), len(code), 0x1000)
    pnote = struct.pack("<IIQQQQQQ", 4, 4, note_off, 0, 0, len(note), len(note), 4)
    head = ehdr + load + pnote + note
    return head + bytes(code_off - len(head)) + code


def ensure(directory: Path) -> tuple[Path, Path]:
    """(stub kernel, empty initrd) in directory, written once, atomically."""
    directory.mkdir(parents=True, exist_ok=True)
    kernel, initrd = directory / "pvh-stub.elf", directory / "empty.initrd"
    for path, data in ((kernel, image()), (initrd, b"\0" * 512)):
        if not path.exists() or path.read_bytes() != data:
            with tempfile.NamedTemporaryFile(dir=directory, delete=False) as f:
                f.write(data)
            os.replace(f.name, path)
    return kernel, initrd
