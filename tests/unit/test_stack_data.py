"""Stacks as data: the files load and validate, a bad one is named, and a container stack's daemon gets each
runtime from the right place (its own packages, or the host's through a wrapper)."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import runtime_data, schema, stack_data, stacks


def test_the_shipped_stacks_load_with_the_host_stack_among_them() -> None:
    found = stack_data.load()
    assert {"debian12", "current"} <= set(found)
    assert stack_data.host_stack().kind == stack_data.HOST
    current = found["current"]
    assert current.kind == stack_data.CONTAINER and current.suite and "docker.io" in current.packages
    assert next(iter(found)) == "current", "the current stack leads the document"


def test_a_container_stack_without_packages_is_refused_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / "odd.yaml").write_text("name: odd\ndescription: x\nkind: container\n")
    with pytest.raises(schema.SchemaError, match=r"odd\.yaml"):
        stack_data.load.__wrapped__(tmp_path)


def test_a_file_must_be_named_for_its_stack(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("name: b\ndescription: x\nkind: host\n")
    with pytest.raises(schema.SchemaError, match=r"must be b\.yaml"):
        stack_data.load.__wrapped__(tmp_path)


def test_unknown_stack_names_the_known_ones() -> None:
    with pytest.raises(SystemExit, match="debian12"):
        stack_data.get("nope")


def test_runtimes_come_from_the_stack_when_it_packages_them_else_from_the_host(tmp_path: Path) -> None:
    current = stack_data.get("current")
    entries = stacks._runtime_entries(current, tmp_path / "bin")
    for name, r in runtime_data.load().items():
        if r.path is None:
            assert name not in entries  # dockerd's own runc: the stack's
        elif r.packages and set(r.packages) <= set(current.packages):
            assert entries[name]["path"] == r.expand((r.path,))[0]
        elif r.registration is not None:
            assert entries[name]["path"] == str(tmp_path / "bin" / name)
        if name in entries and r.args:
            assert entries[name]["runtimeArgs"] == list(r.args)


def test_launcher_enters_the_stacks_mount_namespace_only_for_a_container_stack() -> None:
    host = stacks.Endpoint("debian12", "unix:///var/run/docker.sock", Path("/var/run/docker"), 10, "host")
    stack = stacks.Endpoint("current", "unix:///run/x.sock", Path("/run/vmparity/stacks/current"), 42, "container")
    assert host.launcher == ()
    assert stack.launcher == ("nsenter", "--mount=/proc/42/ns/mnt", "--")
    data, ex = stack.disposable_roots()
    assert str(data).startswith(str(stack.exec_root)) and str(ex).startswith(str(stack.exec_root))
