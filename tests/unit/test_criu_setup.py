"""The criu set-up's pure logic: apt's output, the cache key, the host's mirror, the launcher, library leaks, the
private apt's isolation and dockerd's PATH. No network, no apt runs."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from harness.render import provenance as render_provenance
from harness.setup import criu, dockerd
from harness.setup.criu import Package

SIMULATION = """\
NOTE: This is only a simulation!
Reading package lists...
The following NEW packages will be installed:
  criu gcc-14-base libc6 libgmp10
Inst gcc-14-base (14.2.0-19 Debian:13.8/stable [amd64])
Inst libc6 (2.41-12+deb13u5 Debian:13.8/stable [amd64])
Inst libgmp10 (2:6.3.0+dfsg-3 Debian:13.8/stable [amd64])
Inst libold [1.0-1] (1.1-1 Debian:13.8/stable [amd64])
Inst criu (4.1.1-1 Debian:13.8/stable [amd64])
Conf gcc-14-base (14.2.0-19 Debian:13.8/stable [amd64])
Conf criu (4.1.1-1 Debian:13.8/stable [amd64])
"""


def test_parse_simulation_takes_inst_lines_only_with_epochs_and_upgrades() -> None:
    assert criu.parse_simulation(SIMULATION) == [
        Package("criu", "4.1.1-1", "amd64"), Package("gcc-14-base", "14.2.0-19", "amd64"),
        Package("libc6", "2.41-12+deb13u5", "amd64"), Package("libgmp10", "2:6.3.0+dfsg-3", "amd64"),
        Package("libold", "1.1-1", "amd64")]
    assert Package("libgmp10", "2:6.3.0+dfsg-3", "amd64").spec == "libgmp10=2:6.3.0+dfsg-3"


def test_cache_key_is_order_independent_and_changes_with_any_version() -> None:
    a = [Package("criu", "4.1.1-1", "amd64"), Package("libc6", "2.41-12", "amd64")]
    assert criu.cache_key(a) == criu.cache_key(list(reversed(a)))
    assert criu.cache_key(a) != criu.cache_key([a[0], Package("libc6", "2.41-12+deb13u1", "amd64")])
    assert criu.cache_key(a) != criu.cache_key(a, layout=criu.LAYOUT + 1)
    assert criu.cache_key(a) != criu.cache_key(a, suite="forky")
    assert len(criu.cache_key(a)) == 16


DEB822 = """\
Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://mirror.example/debian/
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main
"""


@pytest.mark.parametrize(("texts", "want"), [
    ([DEB822], "http://mirror.example/debian"),
    (["deb http://security.example/debian-security bookworm-security main\n",
      "# deb http://old.example/debian bookworm main\ndeb [arch=amd64 signed-by=/k.gpg] http://one.example/debian "
      "bookworm main contrib\n"], "http://one.example/debian"),
    (["deb-src http://src.example/debian bookworm main\n", DEB822.replace("bookworm ", "trixie ")], None),
    (["Types: deb\nURIs: https://deb.nodesource.com/node_20.x\nSuites: nodistro\n"], None),
])
def test_debian_mirror_is_the_entry_serving_the_codename(texts: list[str], want: str | None) -> None:
    assert criu.debian_mirror(texts, "bookworm") == want


def test_libraries_outside_finds_host_libraries_not_the_vdso(tmp_path: Path) -> None:
    root = tmp_path / "root"
    listed = (f"\tlinux-vdso.so.1 (0x00007ffd)\n\tlibc.so.6 => {root}/usr/lib/x86_64-linux-gnu/libc.so.6 (0x7f)\n"
              f"\tlibnl-3.so.200 => /lib/x86_64-linux-gnu/libnl-3.so.200 (0x7f)\n"
              f"\t/lib64/ld-linux-x86-64.so.2 => {root}/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 (0x7f)\n")
    assert criu.libraries_outside(listed, root) == ["libnl-3.so.200 => /lib/x86_64-linux-gnu/libnl-3.so.200 (0x7f)"]
    assert criu.libraries_outside(listed, tmp_path / "ro") == [line.strip() for line in listed.splitlines()[1:]]


def test_path_with_first_puts_it_first_once() -> None:
    assert criu.path_with_first("/c/bin", "/usr/bin:/c/bin:/bin") == "/c/bin:/usr/bin:/bin"
    assert criu.path_with_first("/c/bin", "/c/bin:/usr/bin") == "/c/bin:/usr/bin"
    assert criu.path_with_first("/c/bin", None).startswith("/c/bin:/usr/local/sbin:")


def test_parse_version() -> None:
    assert criu.parse_version("Version: 4.1.1\n") == "4.1.1"
    assert criu.parse_version("Warn (criu/kerndat.c:1285): x\nVersion: 3.17.1\nGitID: v3.17\n") == "3.17.1"
    assert criu.parse_version("criu: command not found") is None


def test_launcher_runs_the_program_through_the_given_loader(tmp_path: Path) -> None:
    """The generated script with the host's own loader and /bin/echo in place of criu: arguments pass through
    intact, quoting and all (no criu, no network)."""
    text = criu.launcher_text(Path("/lib64/ld-linux-x86-64.so.2"), [Path("/lib/x86_64-linux-gnu"),
                                                                   Path("/usr/lib/x86_64-linux-gnu")],
                              Path("/bin/echo"))
    assert "--library-path /lib/x86_64-linux-gnu:/usr/lib/x86_64-linux-gnu" in text
    assert "LD_LIBRARY_PATH" not in text  # inherited by what criu spawns (iptables-restore): never
    script = tmp_path / "criu"
    script.write_text(text)
    script.chmod(0o755)
    assert subprocess.run([str(script), "a b", "$c"], capture_output=True, text=True).stdout == "a b $c\n"


def test_contain_symlinks_and_lib_dirs(tmp_path: Path) -> None:
    root = tmp_path / "root"
    lib = root / "usr/lib/x86_64-linux-gnu"
    (lib / "gconv").mkdir(parents=True)
    (lib / "libfoo.so.1.2").write_text("")
    (lib / "libfoo.so.1").symlink_to("libfoo.so.1.2")
    (lib / "libabs.so.3").symlink_to("/usr/lib/x86_64-linux-gnu/libfoo.so.1.2")
    (lib / "gconv/libCNS.so").write_text("")
    (root / "opt/x/lib").mkdir(parents=True)
    (root / "opt/x/lib/libbar.so.0").write_text("")
    criu._contain_symlinks(root)
    assert os.readlink(lib / "libabs.so.3") == "libfoo.so.1.2"
    assert os.readlink(lib / "libfoo.so.1") == "libfoo.so.1.2"
    assert criu._lib_dirs(root) == [lib, root / "opt/x/lib"]


def test_private_apt_never_names_host_state(tmp_path: Path) -> None:
    apt = criu.Apt(tmp_path / "apt", "http://mirror.example/debian")
    apt.prepare()
    opts = dict(o.split("=", 1) for o in apt.options()[1::2])
    for key in ("Dir::Etc::SourceList", "Dir::Etc::SourceParts", "Dir::Etc::Preferences",
                "Dir::Etc::PreferencesParts", "Dir::State", "Dir::State::Lists", "Dir::State::status", "Dir::Cache"):
        assert opts[key].startswith(str(tmp_path)), (key, opts[key])
    assert (tmp_path / "apt/status").read_text() == ""  # empty: the resolver pulls in the whole closure
    assert (tmp_path / "apt/etc/sources.list").read_text() == (
        f"deb [signed-by={criu.KEYRING}] http://mirror.example/debian trixie main\n")


def test_resolution_is_reused_while_the_lists_are_unchanged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    apt = criu.Apt(tmp_path / "apt", "http://mirror.example/debian")
    apt.prepare()
    packages = tmp_path / "apt/lists/mirror_dists_trixie_main_binary-amd64_Packages.lz4"
    packages.write_text("one")
    calls: list[tuple[str, ...]] = []

    def fake_run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        calls.append(args)
        return subprocess.CompletedProcess(args, 0, SIMULATION, "")

    monkeypatch.setattr(apt, "run", fake_run)
    first = apt.resolve()
    assert apt.resolve() == first and len(calls) == 1
    assert json.loads((tmp_path / "apt/resolved.json").read_text())["packages"][0] == ["criu", "4.1.1-1", "amd64"]
    packages.write_text("changed")  # an apt-get update
    apt.resolve()
    assert len(calls) == 2


def test_resolution_without_libc_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    apt = criu.Apt(tmp_path / "apt", "http://mirror.example/debian")
    apt.prepare()
    monkeypatch.setattr(apt, "run", lambda *a, **k: subprocess.CompletedProcess(
        a, 100, "", "E: Unable to locate package criu"))
    with pytest.raises(SystemExit, match="Unable to locate package criu"):
        apt.resolve()


def test_dockerd_path_detection() -> None:
    first = str(criu.bin_dir())
    assert dockerd.criu_first({"PATH": f"{first}:/usr/bin"})
    assert not dockerd.criu_first({"PATH": f"/usr/bin:{first}"})
    assert not dockerd.criu_first({})
    env = dockerd.dockerd_env({"PATH": "/usr/bin:/bin", "HOME": "/root"})
    assert env == {"PATH": f"{first}:/usr/bin:/bin", "HOME": "/root"} and dockerd.criu_first(env)


def test_environ_reads_a_process_environment() -> None:
    env = dockerd.environ(os.getpid())
    assert env is not None and env.get("PATH") == os.environ.get("PATH")
    assert dockerd.environ(2**22 + 1) is None


def test_provenance_row_names_the_criu_on_dockerds_path() -> None:
    info: dict[str, Any] = {"docker": {"criu": {"path": "/var/lib/vmparity/criu/current/bin/criu", "version": "4.1.1",
                                                "resolved": "/var/lib/vmparity/criu/abc/bin/criu"}}}
    rows = dict(render_provenance.rows("r1", info))
    assert rows["criu (on dockerd's PATH)"] == ("4.1.1, path /var/lib/vmparity/criu/current/bin/criu -> "
                                                "/var/lib/vmparity/criu/abc/bin/criu")
    assert "criu (on dockerd's PATH)" not in dict(render_provenance.rows("r1", {"docker": {}}))


def _fake_build(store: Path, packages: list[Package], script: str) -> str:
    key = criu.cache_key(packages)
    (store / key / "bin").mkdir(parents=True)
    (store / key / "stamp.json").write_text("{}")
    (store / key / "bin/criu").write_text("#!/bin/sh\n" + script)
    (store / key / "bin/criu").chmod(0o755)
    return key


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """criu.STORE in tmp, lists present and a fixed resolution: ensure() runs no apt and no network."""
    monkeypatch.setattr(criu, "STORE", tmp_path / "criu")
    monkeypatch.setattr(criu, "host_mirror", lambda: "http://mirror.example/debian")
    monkeypatch.setattr(criu.Apt, "has_lists", lambda self: True)
    monkeypatch.setattr(criu.Apt, "resolve", lambda self: criu.parse_simulation(SIMULATION))
    monkeypatch.setattr(criu.Apt, "download", lambda *a: pytest.fail("a cached build was downloaded again"))
    return tmp_path / "criu"


def test_ensure_uses_a_cached_build_and_makes_it_current(store: Path) -> None:
    key = _fake_build(store, criu.parse_simulation(SIMULATION),
                      'case "$1" in --version) echo "Version: 4.1.1";; check) echo "Looks good.";; esac\n')
    assert criu.ensure().startswith(f"cached: criu 4.1.1 (trixie 4.1.1-1, 5 packages, build {key})")
    assert os.readlink(store / "current") == key
    assert criu.ensure().endswith("criu check: Looks good.")


def test_ensure_fails_clearly_when_criu_check_fails(store: Path) -> None:
    _fake_build(store, criu.parse_simulation(SIMULATION),
                'case "$1" in --version) echo "Version: 4.1.1";; check) echo "Error (criu/vdso.c:613): vdso: Failed to '
                'fill self vdso symtable" >&2; exit 1;; esac\n')
    with pytest.raises(SystemExit, match=r"criu 4\.1\.1 from .* failed `criu check` on kernel .*\n.*vdso symtable"):
        criu.ensure()
    assert not (store / "current").exists()  # a criu that cannot check never becomes current


def test_provenance_records_the_first_criu_on_dockerds_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from harness import provenance

    for d, v in (("first", "4.1.1"), ("second", "3.17.1")):
        (tmp_path / d).mkdir()
        (tmp_path / d / "criu").write_text(f'#!/bin/sh\necho "Version: {v}"\n')
        (tmp_path / d / "criu").chmod(0o755)
    monkeypatch.setattr(dockerd, "running_environ", lambda: (123, {"PATH": f"{tmp_path}/first:{tmp_path}/second"}))
    assert provenance.dockerd_criu() == {"path": f"{tmp_path}/first/criu", "version": "4.1.1",
                                         "resolved": f"{tmp_path}/first/criu", "from_path_of": "dockerd (pid 123)"}
