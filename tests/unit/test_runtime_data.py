"""runtimes/*.yaml: every file is valid, and the suite learns everything about a runtime from its file."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import paths, runtime_data, schema
from harness.setup import daemon_config


def test_the_described_runtimes_load_in_column_order() -> None:
    described = runtime_data.load()
    assert next(iter(described)) == "runc"
    assert {"runc", "runvm", "runsc", "crun", "kata"} <= set(described)
    assert described["runvm-cold"].parent == "runvm"
    assert described["runvm-cold"].args == ("--boot=cold",)


def test_a_variant_shares_its_parents_expectations() -> None:
    assert runtime_data.expect_like("runvm-pool") == "runvm"
    assert runtime_data.expect_like("runvm") is None


def test_daemon_json_gets_exactly_the_installed_registrable_runtimes(tmp_path: Path) -> None:
    exe = tmp_path / "myrt"
    exe.write_text("#!/bin/sh\n")
    (tmp_path / "myrt.yaml").write_text(
        f"name: myrt\ndescription: a vendor's runtime\nregister: {{path: {exe}, args: [--fast]}}\n"
        "leftovers: ['{path}', --root, '{root}', leftovers]\nvariants:\n"
        "  myrt-slow: {description: slower, args: [--slow], opt_in: true}\n")
    (tmp_path / "absent.yaml").write_text("name: absent\ndescription: not installed\n"
                                          "register: {path: /nonexistent/absent}\n")
    (tmp_path / "builtin.yaml").write_text("name: builtin\ndescription: dockerd knows it\nregister: false\n")
    try:
        wanted = {n: r.registration for n, r in runtime_data.load(tmp_path).items() if r.registration}
        assert wanted == {"myrt": {"path": str(exe), "runtimeArgs": ["--fast"]},
                          "myrt-slow": {"path": str(exe), "runtimeArgs": ["--fast", "--slow"]}}
        myrt = runtime_data.load(tmp_path)["myrt"]
        assert myrt.expand(myrt.leftovers, root="/r") == [str(exe), "--root", "/r", "leftovers"]
    finally:
        runtime_data.load.cache_clear()


def test_the_registration_comes_from_the_files() -> None:
    assert daemon_config.wanted_runtimes() == {
        n: r.registration for n, r in runtime_data.load().items() if r.registration is not None}


@pytest.mark.parametrize(("text", "problem"), [
    ("name: x\n", "description"),
    ("name: x\ndescription: d\nregister: {args: [a]}\n", "register"),
    ("name: x\ndescription: d\nflavour: sweet\n", "flavour"),
])
def test_a_bad_file_is_refused_with_its_name(tmp_path: Path, text: str, problem: str) -> None:
    (tmp_path / "x.yaml").write_text(text)
    with pytest.raises(schema.SchemaError, match=rf"x\.yaml.*{problem}|{problem}.*x\.yaml|x\.yaml"):
        runtime_data.load.__wrapped__(tmp_path)


def test_a_file_named_for_another_runtime_is_refused(tmp_path: Path) -> None:
    (tmp_path / "one.yaml").write_text("name: two\ndescription: d\n")
    with pytest.raises(schema.SchemaError, match=r"two\.yaml"):
        runtime_data.load.__wrapped__(tmp_path)


def test_no_suite_code_names_a_runtime_under_test() -> None:
    """The suite learns runtimes from runtimes/: no harness module spells a target's name in code (bench/ may:
    it measures named runtimes side by side, through Docker and their CLIs only)."""
    names = {n for n in runtime_data.load() if n != "runc"}
    offenders = []
    for f in (paths.REPO / "harness").rglob("*.py"):
        for i, line in enumerate(f.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            if any(f'"{n}"' in code or f"'{n}'" in code for n in names):
                offenders.append(f"{f.relative_to(paths.REPO)}:{i}: {line.strip()}")
    assert offenders == []
