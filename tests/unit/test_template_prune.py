"""Template pruning: stale templates and dead builders' leftovers go, the current one and recently used ones
stay, and nothing outside the template store is touched."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from runtime.runvm.vm import template

NOW = 1_000_000.0


def _template(root: Path, key: str, last_used: float) -> Path:
    d = root / key
    d.mkdir()
    for name in ("memory", "state", "meta.json"):
        (d / name).write_text(name)
    os.utime(d / "meta.json", (last_used, last_used))
    return d


def _names(root: Path) -> set[str]:
    return {p.name for p in root.iterdir()}


def test_keeps_current_and_recent_removes_stale(tmp_path: Path) -> None:
    _template(tmp_path, "current", NOW - 10 * 24 * 3600)  # old, but it is the one in use
    _template(tmp_path, "recent", NOW - 60)
    _template(tmp_path, "stale", NOW - template.KEEP_UNUSED_S - 1)
    (tmp_path / "pvh-stub.elf").write_text("stub")  # shared files beside the templates are not templates
    removed = template.prune("current", tmp_path, NOW)
    assert removed == ["stale"]
    assert _names(tmp_path) == {"current", "recent", "pvh-stub.elf"}


def test_keeps_at_most_the_newest_few_however_recent(tmp_path: Path) -> None:
    _template(tmp_path, "current", NOW)
    for i in range(5):
        _template(tmp_path, f"t{i}", NOW - 10 * (i + 1))
    template.prune("current", tmp_path, NOW)
    kept = {n for n in _names(tmp_path) if not n.startswith(".")}
    assert kept == {"current", *[f"t{i}" for i in range(template.KEEP_AT_MOST - 1)]}


def test_mark_used_protects_a_template(tmp_path: Path) -> None:
    d = _template(tmp_path, "other", 0)
    template.mark_used(template.Template("other", d))
    assert template.prune("current", tmp_path) == []


def test_dead_builders_and_discarded_leftovers_go_live_builders_stay(tmp_path: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / f".build-k1-{dead.pid}").mkdir()
    (tmp_path / f".build-k2-{os.getpid()}").mkdir()
    (tmp_path / ".bad-k3-123").mkdir()
    (tmp_path / ".pruned-k4-456").mkdir()
    template.prune("current", tmp_path, NOW)
    assert _names(tmp_path) == {f".build-k2-{os.getpid()}"}


def test_lock_files_of_gone_templates_go_unless_held(tmp_path: Path) -> None:
    import fcntl

    for key in ("gone", "held", "present"):
        lock = tmp_path / f".{key}.lock"
        lock.write_text("")
        os.utime(lock, (0, 0))
    _template(tmp_path, "present", NOW)
    fd = os.open(tmp_path / ".held.lock", os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        template.prune("present", tmp_path, NOW)
    finally:
        os.close(fd)
    assert _names(tmp_path) == {"present", ".held.lock", ".present.lock"}


def test_missing_store_is_not_an_error(tmp_path: Path) -> None:
    assert template.prune("current", tmp_path / "nope", NOW) == []


def test_the_old_disk_store_is_pruned_by_the_same_rules_then_removed(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    store, disk = tmp_path / "shm", tmp_path / "disk"
    store.mkdir()
    disk.mkdir()
    monkeypatch.setattr(template, "TEMPLATES", store)
    monkeypatch.setattr(template, "ON_DISK", disk)
    monkeypatch.delenv("RUNVM_TEMPLATES", raising=False)
    _template(store, "current", NOW)
    _template(disk, "in-use", NOW - 60)  # another install, still on the old code, restored from it a minute ago
    _template(disk, "stale", NOW - 10 * 24 * 3600)
    removed = template.prune("current", now=NOW)
    assert "stale" in removed and str(disk) not in removed
    assert _names(disk) == {"in-use"}
    monkeypatch.setattr(template, "KEEP_UNUSED_S", 30)  # later: nothing uses it any more
    removed = template.prune("current", now=NOW)
    assert str(disk) in removed and not disk.exists() and _names(store) == {"current"}


def test_with_a_store_named_by_the_environment_the_disk_store_is_left_alone(tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    disk = tmp_path / "disk"
    disk.mkdir()
    _template(disk, "stale", NOW - 10 * 24 * 3600)
    monkeypatch.setattr(template, "TEMPLATES", tmp_path / "private")
    monkeypatch.setattr(template, "ON_DISK", disk)
    monkeypatch.setenv("RUNVM_TEMPLATES", str(tmp_path / "private"))
    (tmp_path / "private").mkdir()
    template.prune("current", now=NOW)
    assert _names(disk) == {"stale"}
