"""The gate: regressions, unexpected passes and error cells fail, naming the cell; warnings only when --strict."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness import cli, gate
from tests.unit import synthetic


def findings(overrides: dict | None = None, previous: dict | None = None, strict: bool = False,
             doc: dict | None = None) -> list[gate.Finding]:
    m = synthetic.build(synthetic.registry(), doc or synthetic.results(overrides))
    return gate.check(m, previous, strict=strict)


def test_a_run_at_its_expectations_passes() -> None:
    assert findings() == []


def test_a_regressed_cell_fails_naming_scenario_runtime_expected_observed_reason_and_link() -> None:
    found = findings({("resources/shm-size", "runvm"): "differs"})
    assert gate.failed(found)
    (f,) = found
    msg = f.message()
    assert msg.startswith("FAIL regression: resources/shm-size under runvm: expected same, observed differs")
    assert "the agent mounts it with the size" in msg
    assert "https://github.com/kata-containers/kata-containers/issues/21" in msg
    assert "size_mib: runc 128 · runvm 64" in msg


def test_an_unexpected_pass_fails() -> None:
    (f,) = findings({("resources/shm-size", "runsc"): "same"})
    assert f.level == gate.Level.FAIL and f.kind == "unexpected pass"
    assert "resources/shm-size under runsc: expected differs, observed same" in f.message()
    assert "https://github.com/google/gvisor/issues/1" in f.message()  # the expectation's own link wins


def test_an_error_cell_fails_even_without_an_expectation() -> None:
    doc = synthetic.results({("runtime_commands/ps", "runsc"): "error"})
    doc["cells"].append(synthetic.cell("resources/brand-new", "runvm", "error",
                                       target=synthetic.observed(error="boom")))
    found = findings(doc=doc)
    assert {(f.kind, f.scenario, f.runtime) for f in found if f.level == gate.Level.FAIL} == {
        ("error", "runtime_commands/ps", "runsc"), ("error", "resources/brand-new", "runvm")}


def test_an_error_cell_fails_even_when_the_registry_expects_it() -> None:
    reg = synthetic.registry()
    next(e for e in reg.raw["scenarios"] if e["id"] == "runtime_commands/exec")["expect"]["runvm"]["outcome"] = "error"
    m = synthetic.build(reg, synthetic.results({("runtime_commands/exec", "runvm"): "error"}))
    assert [(f.level, f.kind) for f in gate.check(m)] == [(gate.Level.FAIL, "error")]


def test_no_expectation_is_a_warning_unless_strict() -> None:
    doc = synthetic.results()
    doc["cells"].append(synthetic.cell("resources/brand-new", "runvm", "same"))
    (f,) = findings(doc=doc)
    assert f.level == gate.Level.WARN and f.kind == "no expectation"
    assert not gate.failed([f])
    assert gate.failed(findings(doc=doc, strict=True))


def test_changed_to_an_unranked_outcome_is_a_warning() -> None:
    (f,) = findings({("runtime_commands/exec", "runvm"): "baseline-unavailable"})
    assert (f.level, f.kind) == (gate.Level.WARN, "changed")


def test_a_missing_cell_is_a_warning_and_absent_runtimes_are_not_judged() -> None:
    doc = synthetic.results()
    doc["cells"] = [c for c in doc["cells"] if (c["scenario"], c["runtime"]) != ("runtime_commands/exec", "runsc")]
    found = findings(doc=doc)
    assert [(f.level, f.kind, f.scenario, f.runtime) for f in found] == [
        (gate.Level.WARN, "no result", "runtime_commands/exec", "runsc")]
    assert not any(f.runtime == "kata" for f in found)


def test_previous_run_regressions_fail_even_when_the_registry_allows_them() -> None:
    previous = synthetic.results({("resources/shm-size", "runsc"): "same"}, run_id="run-0")
    found = findings(previous=previous)  # runsc: same -> differs, which the registry expects
    assert [(f.level, f.kind, f.scenario, f.runtime) for f in found] == [
        (gate.Level.FAIL, "regressed since run run-0", "resources/shm-size", "runsc")]
    assert "was same in run run-0" in found[0].message()


def test_report_ends_with_a_verdict() -> None:
    assert gate.report([]).strip() == "gate passed: 0 failures, 0 warnings"
    text = gate.report(findings({("resources/shm-size", "runvm"): "differs"}))
    assert text.strip().endswith("gate FAILED: 1 failure, 0 warnings")


def write(tmp_path: Path, name: str, doc: dict) -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(doc))
    return path


@pytest.fixture
def registry_file(tmp_path: Path) -> Path:
    return write(tmp_path, "limitations.yaml", synthetic.REGISTRY)


def test_cli_gate_exit_codes(tmp_path: Path, registry_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = write(tmp_path, "good.json", synthetic.results())
    bad = write(tmp_path, "bad.json", synthetic.results({("runtime_commands/ps", "runvm"): "refused"}))
    assert cli.main(["gate", "--results", str(good), "--registry", str(registry_file)]) == 0
    capsys.readouterr()
    assert cli.main(["gate", "--results", str(bad), "--registry", str(registry_file)]) == 1
    out = capsys.readouterr().out
    assert "FAIL regression: runtime_commands/ps under runvm: expected same, observed refused" in out
    assert "runvm: 2 same | 1 differs | 1 refused | 1 baseline-unavailable (1 regression)" in out


def test_cli_gate_previous_and_strict(tmp_path: Path, registry_file: Path) -> None:
    now = write(tmp_path, "now.json", synthetic.results())
    before = write(tmp_path, "before.json", synthetic.results({("resources/shm-size", "runsc"): "same"}, "run-0"))
    common = ["gate", "--results", str(now), "--registry", str(registry_file)]
    assert cli.main([*common, "--previous", str(before)]) == 1
    doc = synthetic.results()
    doc["cells"].append(synthetic.cell("resources/brand-new", "runvm", "same"))
    extra = write(tmp_path, "extra.json", doc)
    assert cli.main(["gate", "--results", str(extra), "--registry", str(registry_file)]) == 0
    assert cli.main(["gate", "--results", str(extra), "--registry", str(registry_file), "--strict"]) == 1
