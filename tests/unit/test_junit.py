"""JUnit XML: one testcase per cell of the runtimes in the run; regressions fail, error cells error."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from harness import junit, summary
from tests.unit import synthetic


def tree(overrides: dict | None = None, doc: dict | None = None) -> ET.Element:
    m = synthetic.build(synthetic.registry(), doc or synthetic.results(overrides))
    return ET.fromstring(junit.to_string(m))


def case(root: ET.Element, runtime: str, scenario: str) -> ET.Element:
    area, name = scenario.split("/")
    (found,) = root.findall(f"./testsuite[@name='{runtime}']/testcase[@classname='vmparity.{runtime}.{area}']"
                            f"[@name='{name}']")
    return found


def test_one_testcase_per_cell_and_suite_per_runtime_in_the_run() -> None:
    root = tree()
    assert [s.get("name") for s in root.findall("testsuite")] == ["runc", "runvm", "runsc"]
    assert len(root.findall(".//testcase")) == 15
    assert root.get("tests") == "15" and root.get("failures") == "0" and root.get("errors") == "0"


def test_regressions_and_unexpected_passes_fail_errors_error() -> None:
    root = tree({("resources/shm-size", "runvm"): "differs", ("resources/shm-size", "runsc"): "same",
                 ("runtime_commands/ps", "runsc"): "error"})
    failure = case(root, "runvm", "resources/shm-size").find("failure")
    assert failure is not None and failure.get("type") == "regression"
    assert failure.get("message", "").startswith("regression: observed differs, expected same")
    assert "size_mib: runc 128 · runvm 64" in (failure.text or "")
    passed = case(root, "runsc", "resources/shm-size").find("failure")
    assert passed is not None and passed.get("type") == "unexpected-pass"
    error = case(root, "runsc", "runtime_commands/ps").find("error")
    assert error is not None and "KeyError" in (error.text or "")
    assert root.get("failures") == "2" and root.get("errors") == "1"


def test_a_missing_cell_is_skipped() -> None:
    doc = synthetic.results()
    doc["cells"] = [c for c in doc["cells"] if (c["scenario"], c["runtime"]) != ("runtime_commands/exec", "runvm")]
    skipped = case(tree(doc=doc), "runvm", "runtime_commands/exec").find("skipped")
    assert skipped is not None


def test_summary_line_per_runtime() -> None:
    m = synthetic.build(synthetic.registry(), synthetic.results({("resources/shm-size", "runvm"): "differs"}))
    assert summary.lines(m) == [
        "runc: 4 same | 1 baseline-unavailable",
        "runvm: 2 same | 2 differs | 1 baseline-unavailable (1 regression)",
        "runsc: 3 same | 1 differs | 1 baseline-unavailable",
    ]
