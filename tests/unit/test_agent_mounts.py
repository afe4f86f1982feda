"""The container's filesystem plan from the OCI spec, on the host: mount options, symlinks that must not escape
the rootfs, and which mounts a spec turns into (libc.mount is recorded, never called)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from runtime.agent import libc, mounts


@pytest.fixture
def mounted(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, ...]]:
    calls: list[tuple[Any, ...]] = []
    monkeypatch.setattr(libc, "mount", lambda src, dst, fstype, flags=0, data=None:
                        calls.append((src, dst, fstype, flags, data)))
    return calls


def test_options_become_flags_propagation_and_data() -> None:
    flags, prop, data = mounts.parse_options(["nosuid", "noexec", "nodev", "ro", "rprivate", "mode=755", "size=65536k"])
    assert flags == libc.MS_NOSUID | libc.MS_NOEXEC | libc.MS_NODEV | libc.MS_RDONLY
    assert prop == libc.MS_PRIVATE | libc.MS_REC and data == "mode=755,size=65536k"
    assert mounts.parse_options(["ro", "rw"])[0] == 0  # the last word wins
    assert mounts.parse_options(["rbind", "rro"])[0] == libc.MS_BIND | libc.MS_REC | libc.MS_RDONLY
    assert mounts.parse_options([]) == (0, 0, "")


def test_symlinks_resolve_inside_the_root(tmp_path: Path) -> None:
    root = tmp_path / "rootfs"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "abs").symlink_to("/etc/real")
    (root / "up").symlink_to("../../../outside")
    (root / "loop").symlink_to("loop")
    r = str(root)
    assert mounts.inside(r, "/etc/abs") == f"{r}/etc/real"
    assert mounts.inside(r, "/up/x") == f"{r}/outside/x"
    assert mounts.inside(r, "/../../etc/./hosts") == f"{r}/etc/hosts"
    assert mounts.inside(r, "/new/dir") == f"{r}/new/dir"
    with pytest.raises(OSError, match="too many symlinks"):
        mounts.inside(r, "/loop")


def test_a_bind_from_the_share_and_a_read_only_remount(tmp_path: Path, mounted: list[tuple[Any, ...]]) -> None:
    root = tmp_path / "rootfs"
    root.mkdir()
    share = tmp_path / "share-hosts"
    share.write_text("127.0.0.1 localhost\n")
    m = {"destination": "/etc/hosts", "type": "bind", "source": "hosts", "options": ["rbind", "ro", "rprivate"]}
    mounts._mount_one(str(root), m, {"hosts": str(share)}, [], "/c")
    assert (root / "etc" / "hosts").is_file()  # a file bind needs a file to bind onto
    target = str(root / "etc" / "hosts")
    assert mounted == [
        (str(share), target, None, libc.MS_BIND | libc.MS_REC, None),
        (str(share), target, None, libc.MS_BIND | libc.MS_REMOUNT | libc.MS_RDONLY, None),
        ("", target, None, libc.MS_PRIVATE | libc.MS_REC, None),
    ]


def test_a_tmpfs_dev_gets_its_mode_and_other_file_systems_their_data(tmp_path: Path,
                                                                     mounted: list[tuple[Any, ...]]) -> None:
    root = str(tmp_path)
    mounts._mount_one(root, {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid"]},
                      {}, [], "/c")
    mounts._mount_one(root, {"destination": "/proc", "type": "proc", "source": "proc"}, {}, [], "/c")
    assert mounted == [("tmpfs", f"{root}/dev", "tmpfs", libc.MS_NOSUID, "mode=755"),
                       ("proc", f"{root}/proc", "proc", 0, None)]


def test_the_cgroup_view_binds_the_container_s_cgroups(tmp_path: Path, mounted: list[tuple[Any, ...]],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    fake_root = tmp_path / "sys-fs-cgroup"
    for d in ("memory/c", "cpu,cpuacct/c", "unified"):
        (fake_root / d).mkdir(parents=True)
    real_join = os.path.join
    monkeypatch.setattr(mounts.os.path, "join", lambda a, *p: real_join(str(fake_root) if a == "/sys/fs/cgroup"
                                                                        else a, *p))
    layout = [{"dir": "memory", "type": "cgroup"}, {"dir": "cpu,cpuacct", "type": "cgroup"},
              {"dir": "unified", "type": "cgroup2"}, {"dir": "pids", "type": "cgroup"}]
    target = tmp_path / "rootfs" / "sys" / "fs" / "cgroup"
    mounts.cgroup_view(str(target), layout, "/c", libc.MS_RDONLY)
    sources = [c[0] for c in mounted if c[2] is None and not c[3] & libc.MS_REMOUNT]
    assert sources == [f"{fake_root}/memory/c", f"{fake_root}/cpu,cpuacct/c", f"{fake_root}/unified"]  # no pids
    assert mounted[-1][0] == "tmpfs" and mounted[-1][3] & libc.MS_RDONLY  # the view itself ends read-only
    assert os.readlink(target / "cpu") == "cpu,cpuacct" and os.readlink(target / "cpuacct") == "cpu,cpuacct"
    assert mounts.entry_links(layout) == {"cpu": "cpu,cpuacct", "cpuacct": "cpu,cpuacct"}


def test_devices_and_their_links(tmp_path: Path) -> None:
    if os.getuid() != 0:
        pytest.skip("mknod needs root")
    root = tmp_path / "rootfs"
    (root / "dev").mkdir(parents=True)
    mounts.make_devices(str(root), [{"path": "/dev/null", "type": "c", "major": 1, "minor": 3, "fileMode": 0o600},
                                    {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229}])
    assert sorted(os.listdir(root / "dev")) == ["full", "fuse", "null", "random", "tty", "urandom", "zero"]
    st = os.stat(root / "dev" / "null")
    assert (os.major(st.st_rdev), os.minor(st.st_rdev), st.st_mode & 0o777) == (1, 3, 0o600)  # the spec's, once
    mounts.default_dev_links(str(root))
    assert os.readlink(root / "dev" / "fd") == "/proc/self/fd" and os.readlink(root / "dev" / "ptmx") == "pts/ptmx"
