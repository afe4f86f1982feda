"""What the guest image carries of runvm's Python: runtime.agent and runtime.wire under their host names, started
as /init says, and importing nothing the guest does not have (its standard library, pyroute2, the two)."""

from __future__ import annotations

import ast
import sys

from runtime.guest import inputs

GUEST_HAS = {"runtime.agent", "runtime.wire", "pyroute2"}


def test_the_guest_carries_both_packages_under_their_host_names() -> None:
    files = inputs.agent_sources()
    assert {"runtime/__init__.py", "runtime/agent/__init__.py", "runtime/agent/__main__.py",
            "runtime/wire/__init__.py", "runtime/wire/frames.py"} <= set(files)
    assert all(p.startswith(("runtime/agent/", "runtime/wire/")) for p in files if p != "runtime/__init__.py")
    init = inputs.INIT.read_text()
    assert "-m runtime.agent" in init and "/run/agent/runtime/agent/__main__.py" in init


def _imports(source: bytes) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def test_guest_modules_import_only_what_the_guest_has() -> None:
    for path, source in inputs.agent_sources().items():
        for name in _imports(source):
            top = name.split(".")[0]
            ok = top in sys.stdlib_module_names or any(name == g or name.startswith(g + ".") for g in GUEST_HAS)
            assert ok, f"{path} imports {name}, which the guest image does not carry"
    assert _imports(inputs.agent_sources()["runtime/__init__.py"]) == set()


def test_the_wire_is_standard_library_only() -> None:
    for path, source in inputs.agent_sources().items():
        if path.startswith("runtime/wire/"):
            for name in _imports(source):
                assert name.split(".")[0] in sys.stdlib_module_names or name.startswith("runtime.wire"), (path, name)
