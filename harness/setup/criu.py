"""CRIU for runc's checkpoint baseline: Debian trixie's criu, unpacked privately, with its own libc.

Debian 12's criu 3.17 cannot dump on newer kernels ("Failed to fill self vdso symtable"); trixie's works, but needs
trixie's libc, which must never replace the host's. So apt-get resolves and downloads the whole dependency closure
against private sources, lists, cache and an empty dpkg status (nothing counts as installed), `dpkg-deb -x` unpacks
each package under STORE/<key>/root, and a generated launcher STORE/<key>/bin/criu runs criu through that root's
own ld.so with `--library-path` (not LD_LIBRARY_PATH, so the host programs criu spawns, e.g. iptables-restore, keep
the host's libc). STORE/current points at the active build; dockerd gets STORE/current/bin first on its PATH
(harness/setup/dockerd.py), and runc, run by containerd's shim with dockerd's environment, finds it there.

A build is keyed by the resolved package versions. Lists are fetched once; a second run with nothing changed reuses
the resolution (the lists' fingerprint is unchanged) and the build, and only re-runs `criu check` (the kernel may
have changed under it). To pick up newer trixie packages, delete STORE/apt/lists.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import pwd
import re
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import astuple, dataclass
from pathlib import Path

from harness import paths

STORE = paths.STATE / "criu"
SUITE = "trixie"
REQUEST = ("criu",)
DEFAULT_MIRROR = "http://deb.debian.org/debian"
KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")
LAYOUT = 1
"""Bumped when the build's layout or launcher changes, so old builds are not taken for current ones."""
MULTIARCH = "x86_64-linux-gnu"


@dataclass(frozen=True, order=True)
class Package:
    name: str
    version: str
    arch: str

    @property
    def spec(self) -> str:
        return f"{self.name}={self.version}"


# ---- pure logic (unit-tested) -----------------------------------------------------------------------------------

_INST = re.compile(r"^Inst (?P<name>\S+) (?:\[[^\]]*\] )?\((?P<version>\S+) .*\[(?P<arch>[^\]]+)\]\)")


def parse_simulation(output: str) -> list[Package]:
    """The packages `apt-get -s install` would unpack ("Inst name (version release [arch])" lines), sorted."""
    found = {Package(m["name"], m["version"], m["arch"]) for line in output.splitlines() if (m := _INST.match(line))}
    return sorted(found)


def cache_key(packages: list[Package], suite: str = SUITE, layout: int = LAYOUT) -> str:
    """Names a build by exactly what is unpacked in it (order-independent)."""
    text = f"layout {layout}\nsuite {suite}\n" + "".join(f"{p.name} {p.version} {p.arch}\n" for p in sorted(packages))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def debian_mirror(sources: list[str], codename: str) -> str | None:
    """The URI of the host's Debian archive (the entry serving `codename` itself, not -security or -updates) from
    sources.list / *.sources texts, one-line or deb822."""
    for text in sources:
        stanza: dict[str, str] = {}
        for raw in [*text.splitlines(), ""]:
            if raw.lstrip().startswith("#"):
                continue  # a comment inside a deb822 stanza does not end it
            line = raw.split("#", 1)[0].strip()
            if line.startswith(("deb ", "deb\t")):
                words = re.sub(r"\[[^\]]*\]", " ", line).split()
                if len(words) >= 3 and words[2] == codename:
                    return words[1].rstrip("/")
            elif ":" in line and not line.startswith("deb"):
                key, value = line.split(":", 1)
                stanza[key.strip().lower()] = value.strip()
            elif not line:
                if "deb" in stanza.get("types", "").split() and codename in stanza.get("suites", "").split():
                    return stanza.get("uris", "").split()[0].rstrip("/") if stanza.get("uris") else None
                stanza = {}
    return None


def libraries_outside(list_output: str, root: Path) -> list[str]:
    """Libraries `ld.so --list` resolved outside root: the host's leaking into criu (linux-vdso is the kernel's)."""
    outside = []
    for line in list_output.splitlines():
        line = line.strip()
        if not line or line.startswith("linux-vdso"):
            continue
        target = line.split("=>", 1)[1] if "=>" in line else line
        path = target.strip().split(" (", 1)[0].strip()
        if path and not Path(path).is_relative_to(root):
            outside.append(line)
    return outside


def path_with_first(directory: str, path: str | None) -> str:
    """PATH with directory first and nowhere else (a dockerd restarted twice does not grow it)."""
    rest = [p for p in (path or "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin").split(":")
            if p and p != directory]
    return ":".join([directory, *rest])


def parse_version(output: str) -> str | None:
    """"Version: 4.1.1" (criu --version) -> "4.1.1"."""
    m = re.search(r"^Version:\s*(\S+)", output, re.M)
    return m.group(1) if m else None


def launcher_text(ld_so: Path, lib_dirs: list[Path], criu: Path) -> str:
    libs = ":".join(str(d) for d in lib_dirs)
    return ("#!/bin/sh\n# generated by harness/setup/criu.py: Debian trixie's criu with its own libc, never the "
            "host's\n"
            f"exec {shlex.quote(str(ld_so))} --library-path {shlex.quote(libs)} {shlex.quote(str(criu))} \"$@\"\n")


# ---- the private apt -------------------------------------------------------------------------------------------

class Apt:
    """apt-get with private sources, preferences, lists, cache and an empty dpkg status under STORE/apt: it never
    reads or writes the host's package state, so it resolves the full closure and downloads, never installs."""

    def __init__(self, base: Path, mirror: str, suite: str = SUITE) -> None:
        self.base, self.mirror, self.suite = base, mirror, suite
        self.lists = base / "lists"

    def prepare(self) -> None:
        for d in ("etc/sources.list.d", "etc/preferences.d", "state", "lists/partial", "cache/archives/partial"):
            (self.base / d).mkdir(parents=True, exist_ok=True)
        _write_if_changed(self.base / "etc/sources.list",
                          f"deb [signed-by={KEYRING}] {self.mirror} {self.suite} main\n")
        _write_if_changed(self.base / "etc/preferences", "")
        _write_if_changed(self.base / "status", "")

    def options(self) -> list[str]:
        b = self.base
        opts = {
            "Dir::Etc::SourceList": b / "etc/sources.list", "Dir::Etc::SourceParts": b / "etc/sources.list.d",
            "Dir::Etc::Preferences": b / "etc/preferences", "Dir::Etc::PreferencesParts": b / "etc/preferences.d",
            "Dir::State": b / "state", "Dir::State::Lists": self.lists, "Dir::State::status": b / "status",
            "Dir::Cache": b / "cache", "Dir::Cache::archives": b / "cache/archives",
            "Dir::Cache::pkgcache": "", "Dir::Cache::srcpkgcache": "",  # 86 MB; resolved.json spares re-parsing
            "APT::Install-Recommends": "false", "APT::Install-Suggests": "false",
        }
        return [arg for k, v in opts.items() for arg in ("-o", f"{k}={v}")]

    def run(self, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "LC_ALL": "C", "DEBIAN_FRONTEND": "noninteractive"}
        return subprocess.run(["apt-get", *self.options(), *args], capture_output=True, text=True, cwd=cwd, env=env,
                              stdin=subprocess.DEVNULL, timeout=900)

    def has_lists(self) -> bool:
        return any(self.lists.glob("*Release")) and any(self.lists.glob("*_Packages*"))

    def update(self) -> None:
        r = self.run("update", "-q")
        if r.returncode != 0 or not self.has_lists():
            raise SystemExit(f"setup: criu: apt-get update against {self.mirror} {self.suite} failed "
                             f"(exit {r.returncode}):\n{(r.stderr or r.stdout)[-2000:]}")

    def fingerprint(self) -> str:
        """What the resolution depends on: the lists on disk, the request, apt itself. Stat only: no parsing."""
        h = hashlib.sha256(f"{self.mirror} {self.suite} {REQUEST}\n".encode())
        for p in [*sorted(self.lists.glob("*")), Path(shutil.which("apt-get") or "apt-get")]:
            with contextlib.suppress(OSError):
                if p.is_file() and p.name != "lock":
                    st = p.stat()
                    h.update(f"{p.name} {st.st_size} {st.st_mtime_ns}\n".encode())
        return h.hexdigest()

    def resolve(self) -> list[Package]:
        """apt's own resolver over the private lists: the full closure, since the status says nothing is
        installed. Cached in resolved.json by the lists' fingerprint, so an unchanged second run runs no apt."""
        cache = self.base / "resolved.json"
        fp = self.fingerprint()
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            saved = json.loads(cache.read_text())
            if saved["fingerprint"] == fp:
                return [Package(*p) for p in saved["packages"]]
        r = self.run("-s", "install", *REQUEST)
        packages = parse_simulation(r.stdout)
        names = {p.name for p in packages}
        if r.returncode != 0 or not set(REQUEST) <= names or "libc6" not in names:
            raise SystemExit(f"setup: criu: apt-get could not resolve {' '.join(REQUEST)} in {self.suite} "
                             f"(exit {r.returncode}):\n{(r.stderr or r.stdout)[-2000:]}")
        _write_if_changed(cache, json.dumps({"fingerprint": fp, "packages": [astuple(p) for p in packages]},
                                            indent=1))
        return packages

    def download(self, packages: list[Package], dest: Path) -> list[Path]:
        """`apt-get download name=version ...` into dest (verified against the signed lists)."""
        dest.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(KeyError):  # apt drops to _apt for downloads: let it write there
            os.chown(dest, pwd.getpwnam("_apt").pw_uid, -1)
        r = self.run("download", "-q", *(p.spec for p in packages), cwd=dest)
        debs = sorted(dest.glob("*.deb"))
        if r.returncode != 0 or len(debs) != len(packages):
            raise DownloadFailed(f"apt-get download (exit {r.returncode}, {len(debs)} of {len(packages)} files):\n"
                                 f"{(r.stderr or r.stdout)[-2000:]}")
        return debs


class DownloadFailed(Exception):
    """The lists name versions the mirror no longer has (or the network failed): worth one update and retry."""


# ---- builds ----------------------------------------------------------------------------------------------------

def bin_dir() -> Path:
    """The launcher's directory, a stable path (through STORE/current) for dockerd's PATH."""
    return STORE / "current" / "bin"


def launcher() -> Path:
    return bin_dir() / "criu"


def version(criu: Path | str | None = None) -> str | None:
    """`criu --version` of the given criu (default: the installed launcher), or None where it does not run."""
    try:
        out = subprocess.run([str(criu or launcher()), "--version"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return parse_version(out.stdout + out.stderr) if out.returncode == 0 else None


def check(criu: Path | None = None) -> tuple[bool, str]:
    """`criu check`: can this criu checkpoint on this kernel? (ok, its output: "Looks good." plus any warnings)."""
    try:
        r = subprocess.run([str(criu or launcher()), "check"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        return False, str(e)
    text = "\n".join(line for line in (r.stdout + r.stderr).splitlines() if line.strip())
    return r.returncode == 0 and "Looks good" in text, text


def _write_if_changed(path: Path, text: str) -> None:
    with contextlib.suppress(OSError):
        if path.read_text() == text:
            return
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _contain_symlinks(root: Path) -> None:
    """Absolute symlinks in the packages would point at the host's files: make them point inside root."""
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            p = Path(dirpath, name)
            if p.is_symlink() and (target := os.readlink(p)).startswith("/"):
                p.unlink()
                p.symlink_to(os.path.relpath(root / target.lstrip("/"), p.parent))


_SONAME = re.compile(r"^lib.+\.so\.\d")
"""A shared library's versioned name (gconv's unversioned modules are plugins, not a library directory)."""


def _lib_dirs(root: Path) -> list[Path]:
    """Every directory of root holding shared libraries, the multiarch ones first (as ld.so.conf orders them)."""
    dirs = {p.parent for p in root.rglob("lib*.so.*") if p.is_file() and _SONAME.match(p.name)}
    first = [root / "usr/lib" / MULTIARCH, root / "lib" / MULTIARCH]
    return [d for d in first if d in dirs] + sorted(dirs - set(first))


def _build(key: str, packages: list[Package], apt: Apt) -> Path:
    """Download and unpack into a temporary directory, verify, then rename it to STORE/<key> in one step."""
    tmp = Path(tempfile.mkdtemp(prefix=f".{key}.tmp-", dir=STORE))
    try:
        tmp.chmod(0o755)  # apt's _apt download sandbox must reach tmp/debs
        debs = apt.download(packages, tmp / "debs")
        root = tmp / "root"
        root.mkdir()
        for deb in debs:
            r = subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], capture_output=True, text=True)
            if r.returncode != 0:
                raise SystemExit(f"setup: criu: dpkg-deb -x {deb.name} failed: {r.stderr.strip()}")
        shutil.rmtree(tmp / "debs")
        _contain_symlinks(root)
        final = STORE / key
        # paths as they will be after the rename: the launcher names the final location
        rel_libs = [d.relative_to(tmp) for d in _lib_dirs(root)]
        ld_so = root / "usr/lib" / MULTIARCH / "ld-linux-x86-64.so.2"
        criu_bin = root / "usr/sbin/criu"
        if not ld_so.exists() or not criu_bin.exists() or not rel_libs:
            raise SystemExit(f"setup: criu: the unpacked packages have no {ld_so.name} or usr/sbin/criu")
        listed = subprocess.run([str(ld_so), "--library-path", ":".join(str(tmp / d) for d in rel_libs), "--list",
                                 str(criu_bin)], capture_output=True, text=True)
        leaks = libraries_outside(listed.stdout, tmp)
        if listed.returncode != 0 or leaks:
            raise SystemExit(f"setup: criu: trixie's criu would load libraries from outside {tmp}: "
                             f"{leaks or listed.stderr.strip()}")
        (tmp / "bin").mkdir()
        script = tmp / "bin/criu"
        script.write_text(launcher_text(final / ld_so.relative_to(tmp), [final / d for d in rel_libs],
                                        final / criu_bin.relative_to(tmp)))
        script.chmod(0o755)
        (tmp / "stamp.json").write_text(json.dumps({
            "key": key, "suite": apt.suite, "mirror": apt.mirror, "layout": LAYOUT,
            "packages": [f"{p.name} {p.version} {p.arch}" for p in packages]}, indent=1) + "\n")
        if final.exists():
            shutil.rmtree(final)
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def _activate(key: str) -> str | None:
    """Point STORE/current at STORE/<key> atomically; returns the key it pointed at before."""
    current = STORE / "current"
    before = os.readlink(current) if current.is_symlink() else None
    if before != key:
        tmp = STORE / f".current.tmp-{os.getpid()}"
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(key)
        os.replace(tmp, current)
    return before


def _prune(keep: set[str]) -> None:
    """Old builds (all but the active and the one it replaced, which a criu started a moment ago may still run)."""
    for entry in STORE.iterdir():
        if entry.is_dir() and not entry.is_symlink() and entry.name not in keep and entry.name != "apt":
            shutil.rmtree(entry, ignore_errors=True)


@contextlib.contextmanager
def _locked() -> Iterator[None]:
    STORE.mkdir(parents=True, exist_ok=True)
    with open(STORE / ".lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


def host_mirror() -> str:
    """The host's own Debian mirror (sources.list*), so trixie comes from where bookworm does."""
    codename = ""
    with contextlib.suppress(OSError):
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("VERSION_CODENAME="):
                codename = line.split("=", 1)[1].strip('"')
    texts = []
    for p in [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]:
        with contextlib.suppress(OSError):
            if p.suffix in (".list", ".sources") or p.name == "sources.list":
                texts.append(p.read_text())
    return (debian_mirror(texts, codename) if codename else None) or DEFAULT_MIRROR


def ensure() -> str:
    """Install (or find cached) trixie's criu, make it current and `criu check` it. Returns a one-line summary;
    raises SystemExit naming what failed."""
    with _locked():
        apt = Apt(STORE / "apt", host_mirror())
        apt.prepare()
        updated = False
        if not apt.has_lists():
            apt.update()
            updated = True
        for attempt in (1, 2):
            packages = apt.resolve()
            key = cache_key(packages)
            if (STORE / key / "stamp.json").exists() and (STORE / key / "bin/criu").exists():
                what = "cached"
                break
            try:
                _build(key, packages, apt)
            except DownloadFailed as e:
                if attempt == 2 or updated:
                    raise SystemExit(f"setup: criu: {e}") from e
                apt.update()  # the mirror moved on since the lists were fetched
                updated = True
                continue
            what = "installed"
            break
        criu = STORE / key / "bin/criu"
        got = version(criu)
        ok, out = check(criu)
        if not ok:
            raise SystemExit(f"setup: criu {got or '(did not run)'} from {STORE / key} failed `criu check` on "
                             f"kernel {os.uname().release}:\n{out}")
        before = _activate(key)
        if before != key:
            _prune({key, *([before] if before else [])})
        warnings = sum(1 for line in out.splitlines() if line.startswith("Warn"))
        result = "Looks good." + (f" ({warnings} warning{'s' * (warnings > 1)})" if warnings else "")
        crius = [p for p in packages if p.name == "criu"]
        return (f"{what}: criu {got} ({SUITE} {crius[0].version if crius else '?'}, {len(packages)} packages, "
                f"build {key}) at {bin_dir()}; criu check: {result}")
