"""Provenance rows: where and with what a run happened, as (label, value) pairs for any render to lay out."""

from __future__ import annotations

from typing import Any

from harness.render.words import first_line


def _join(*parts: Any) -> str:
    return ", ".join(str(p) for p in parts if p not in (None, "", [], {}))


def _accel(provenance: dict[str, Any]) -> str:
    """Accelerator facts where the run recorded them (a runtime's own `accel`, or the host's KVM probe)."""
    found = []
    if provenance.get("accel"):
        found.append(str(provenance["accel"]))
    for name, info in sorted((provenance.get("runtimes") or {}).items()):
        if isinstance(info, dict) and info.get("accel"):
            found.append(f"{name}: {info['accel']}")
    host = provenance.get("host") or {}
    if "dev_kvm" in host:
        found.append(f"/dev/kvm {'present' if host['dev_kvm'] else 'absent'}")
    if "cpu_virt_flags" in host:
        found.append(f"CPU virtualisation flags {'present' if host['cpu_virt_flags'] else 'absent'}")
    return "; ".join(found)


def runtime_text(info: dict[str, Any]) -> str:
    version = first_line(info.get("version")) or "unknown version"
    args = " ".join(str(a) for a in info.get("args") or [])
    return _join(version, f"path {info['path']}" if info.get("path") else None,
                 f"args {args}" if args else "no args")


def _criu(info: Any) -> str:
    """The criu runc used (recorded since the checkpoint baseline depends on which one): version and path."""
    if not isinstance(info, dict) or not info.get("path"):
        return ""
    resolved = info.get("resolved")
    via = f" -> {resolved}" if resolved and resolved != info["path"] else ""
    return _join(info.get("version") or "unknown version", f"path {info['path']}{via}")


def _stack(info: Any) -> str:
    """Which Docker stack the run observed, and from which packages (a stack of its own lists them)."""
    if not isinstance(info, dict) or not info.get("name"):
        return ""
    packages = ", ".join(f"{k} {v}" for k, v in sorted((info.get("packages") or {}).items()))
    where = "the host's own dockerd" if info.get("kind") == "host" else f"its own dockerd ({info.get('image')})"
    return _join(f"{info['name']}: {where}", f"packages {packages}" if packages else None)


def rows(run_id: str, provenance: dict[str, Any]) -> list[tuple[str, str]]:
    host = provenance.get("host") or {}
    docker = provenance.get("docker") or {}
    suite = provenance.get("suite") or {}
    options = provenance.get("options") or {}
    out: list[tuple[str, str]] = [
        ("run", run_id),
        ("stack", _stack(provenance.get("stack"))),
        ("started", str(provenance.get("started") or "")),
        ("finished", str(provenance.get("finished") or "unfinished")),
        ("host kernel", _join(host.get("kernel"), host.get("arch"))),
        ("distribution", str(host.get("distro") or "")),
        ("cgroup", _join(host.get("cgroup"), f"driver {docker['cgroup_driver']}" if docker.get("cgroup_driver")
                         else None)),
        ("CPUs", str(host.get("cpus") or "")),
        ("Docker", _join(docker.get("server"), f"API {docker['api']}" if docker.get("api") else None,
                         f"storage {docker['storage_driver']}" if docker.get("storage_driver") else None)),
        ("containerd", _join(docker.get("containerd"))),
        ("runc (Docker's)", _join(docker.get("runc_commit"))),
        ("criu (on dockerd's PATH)", _criu(docker.get("criu"))),
    ]
    for name, info in sorted((provenance.get("runtimes") or {}).items()):
        out.append((f"runtime {name}", runtime_text(info) if isinstance(info, dict) else str(info)))
    accel = _accel(provenance)
    if accel:
        out.append(("acceleration", accel))
    commit = suite.get("commit") or suite.get("commits")
    if commit:
        dirty = " (with uncommitted changes)" if suite.get("dirty") else ""
        out.append(("suite commit", f"{', '.join(commit) if isinstance(commit, list) else commit}{dirty}"))
    if options:
        out.append(("options", ", ".join(f"{k}={_option(v)}" for k, v in sorted(options.items()))))
    return [(k, v) for k, v in out if v]


def _option(value: Any) -> str:
    if isinstance(value, list):
        return "+".join(str(v) for v in value)
    return str(value)
