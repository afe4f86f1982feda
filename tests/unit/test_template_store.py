"""Where templates are kept: a directory only root can change (it sits in world-writable /dev/shm), and a memory
file with no holes, so no clone's first write adds a page to it."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pytest

from runtime.runvm.errors import RunvmError
from runtime.runvm.vm import template


def test_make_root_creates_private_parents_whatever_the_umask(tmp_path: Path) -> None:
    root = tmp_path / "a" / "b" / "templates"
    old = os.umask(0)
    try:
        template.make_root(root)
    finally:
        os.umask(old)
    for p in (root, root.parent, root.parent.parent):
        assert p.is_dir() and p.stat().st_mode & 0o777 == 0o755


def test_a_symlinked_parent_is_refused(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    with pytest.raises(RunvmError, match=r"link is not a directory that only root can change"):
        template.check_root(tmp_path / "link" / "templates")


def test_a_directory_owned_by_someone_else_is_refused(tmp_path: Path) -> None:
    d = tmp_path / "vmparity"
    d.mkdir()
    os.chown(d, 65534, 65534)
    with pytest.raises(RunvmError, match=r"owner uid 65534"):
        template.check_root(d / "templates")


def test_world_writable_is_refused_unless_a_sticky_parent(tmp_path: Path) -> None:
    d = tmp_path / "shared"
    d.mkdir()
    d.chmod(0o777)
    with pytest.raises(RunvmError, match=r"drwxrwxrwx"):
        template.check_root(d / "templates")
    d.chmod(0o1777)  # like /dev/shm and /tmp: others cannot rename or remove what root made there
    template.check_root(d / "templates")
    with pytest.raises(RunvmError, match=r"drwxrwxrwt"):  # but they could add a template of their own to it
        template.check_root(d)


def test_a_relative_store_is_refused() -> None:
    with pytest.raises(RunvmError, match="absolute path"):
        template.check_root(Path("templates"))


def test_an_untrusted_store_means_the_cold_path_not_a_failed_create(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    store = tmp_path / "store"
    store.mkdir()
    store.chmod(0o777)
    monkeypatch.setattr(template, "TEMPLATES", store)
    found, why = template.find("0123456789abcdef0123")
    assert found is None and "refusing to keep VM templates" in why


def test_a_vmparity_dir_made_by_someone_else_in_dev_shm_keeps_templates_on_disk(tmp_path: Path) -> None:
    shm = tmp_path / "shm"
    shm.mkdir()
    shm.chmod(0o1777)
    link = tmp_path / "shm-link"  # /dev/shm -> /run/shm on some systems: followed, then checked
    link.symlink_to(shm)
    big = SimpleNamespace(f_blocks=(8 << 30) // 4096, f_frsize=4096)
    with pytest.MonkeyPatch.context() as m:
        m.setattr(os, "statvfs", lambda _p: big)
        assert template._default_store(link) == shm / "vmparity" / "templates"
        (shm / "vmparity").mkdir()
        os.chown(shm / "vmparity", 65534, 65534)
        assert template._default_store(link) == template.ON_DISK


def test_fill_holes_allocates_every_page(tmp_path: Path) -> None:
    shm = Path("/dev/shm")
    base = shm if shm.is_dir() else tmp_path
    memory = base / f"vmparity-test-memory-{os.getpid()}"
    try:
        with open(memory, "wb") as f:
            f.write(b"x" * 4096)
            f.truncate(4 << 20)
        assert os.stat(memory).st_blocks * 512 < 4 << 20
        template._fill_holes(memory)
        st = os.stat(memory)
        assert st.st_size == 4 << 20 and st.st_blocks * 512 >= st.st_size
        assert memory.read_bytes()[:4096] == b"x" * 4096
    finally:
        memory.unlink(missing_ok=True)


def test_a_small_or_missing_dev_shm_keeps_templates_on_disk(monkeypatch: pytest.MonkeyPatch) -> None:
    def statvfs_of(blocks: int | None) -> Callable[[str], os.statvfs_result]:
        def fake(path: str) -> os.statvfs_result:
            if blocks is None:
                raise FileNotFoundError(path)
            return os.statvfs_result((4096, 4096, blocks, blocks, blocks, 0, 0, 0, 0, 255))
        return fake

    monkeypatch.setattr(os, "statvfs", statvfs_of((64 << 20) // 4096))  # a container's default /dev/shm
    assert template._default_store() == template.ON_DISK
    monkeypatch.setattr(os, "statvfs", statvfs_of(None))
    assert template._default_store() == template.ON_DISK
    monkeypatch.setattr(os, "statvfs", statvfs_of((24 << 30) // 4096))
    assert template._default_store() == Path("/dev/shm/vmparity/templates")
