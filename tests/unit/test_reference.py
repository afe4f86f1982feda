"""`vmparity reference` takes only one finished run of every scenario at one clean commit, unless told otherwise."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from harness import cli, reference, results
from tests.unit import synthetic

REGISTERED = {s["id"] for s in synthetic.REGISTRY["scenarios"]}


def _doc(**provenance: Any) -> dict[str, Any]:
    doc = synthetic.results(run_id="ref-1")
    doc["provenance"].update(provenance)
    return doc


def test_a_clean_complete_run_has_no_problems() -> None:
    assert reference.problems(_doc(), REGISTERED) == []


@pytest.mark.parametrize(("change", "words"), [
    ({"suite": {"commit": "0123456789abcdef", "dirty": True}}, "uncommitted changes"),
    ({"suite_at_finish": {"commit": "fedcba9876543210", "dirty": False}}, "HEAD moved during the run"),
    ({"suite_at_finish": {"commit": "0123456789abcdef", "dirty": True}}, "tree changed during the run"),
    ({"finished": None}, "did not finish"),
    ({"suite_at_finish": None}, "did not record the suite's commit at its end"),
    ({"merge": {"rule": "worse", "conflicts": []}}, "is a merge"),
    ({"suite": {"commits": ["aaa", "bbb"], "dirty": False}}, "spans suite commits aaa, bbb"),
])
def test_each_unclean_property_is_named(change: dict[str, Any], words: str) -> None:
    doc = _doc(**change)
    if change.get("suite_at_finish", "") is None:
        del doc["provenance"]["suite_at_finish"]
    found = reference.problems(doc, REGISTERED)
    assert len(found) == 1 and words in found[0], found


def test_a_partial_run_names_the_scenarios_that_did_not_run() -> None:
    doc = _doc()
    missing = sorted(REGISTERED)[0]
    doc["cells"] = [c for c in doc["cells"] if c["scenario"] != missing]
    assert reference.problems(doc, REGISTERED) == [f"1 registered scenario did not run: {missing}"]


def _registry_file(tmp_path: Path) -> Path:
    path = tmp_path / "limitations.yaml"
    path.write_text(json.dumps(synthetic.REGISTRY))
    return path


def _run_dir(tmp_path: Path, doc: dict[str, Any]) -> Path:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "results.json").write_text(json.dumps(doc))
    return run_dir


def test_reference_refuses_an_unclean_run_and_keeps_the_old_one(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "reference" / "results.json"
    target.parent.mkdir()
    old = synthetic.results(run_id="old")
    target.write_text(json.dumps(old))
    monkeypatch.setattr(cli, "DEFAULT_RESULTS", target)
    run_dir = _run_dir(tmp_path, _doc(suite={"commit": "0123456789abcdef", "dirty": True}))
    with pytest.raises(SystemExit) as e:
        cli.main(["reference", str(run_dir), "--registry", str(_registry_file(tmp_path))])
    assert "not one clean run" in str(e.value) and "uncommitted changes" in str(e.value)
    assert json.loads(target.read_text())["run_id"] == "old"


def test_allow_unclean_records_why_and_the_document_says_so(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "reference" / "results.json"
    monkeypatch.setattr(cli, "DEFAULT_RESULTS", target)
    doc = _doc(suite_at_finish={"commit": "fedcba9876543210", "dirty": False})
    run_dir = _run_dir(tmp_path, doc)
    registry_file = _registry_file(tmp_path)
    assert cli.main(["reference", str(run_dir), "--registry", str(registry_file), "--allow-unclean"]) == 0
    kept = results.load(target)
    assert kept["provenance"]["reference_problems"] == [
        "HEAD moved during the run (0123456789ab at the start, fedcba987654 at the end)"]
    md = tmp_path / "docs" / "limitations.md"
    assert cli.main(["render", "--results", str(target), "--registry", str(registry_file), "--out-md", str(md),
                     "--no-html"]) == 0
    text = md.read_text()
    assert "**This is not one clean run**" in text and "HEAD moved during the run" in text


def test_a_clean_reference_names_its_commit_and_date_and_nothing_else(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "reference" / "results.json"
    monkeypatch.setattr(cli, "DEFAULT_RESULTS", target)
    registry_file = _registry_file(tmp_path)
    doc = copy.deepcopy(_doc())
    doc["provenance"]["reference_problems"] = ["left over from an earlier copy"]
    assert cli.main(["reference", str(_run_dir(tmp_path, doc)), "--registry", str(registry_file)]) == 0
    assert "reference_problems" not in results.load(target)["provenance"]
    md = tmp_path / "limitations.md"
    assert cli.main(["render", "--results", str(target), "--registry", str(registry_file), "--out-md", str(md),
                     "--no-html"]) == 0
    text = md.read_text()
    assert "started 2026-01-01T00:00:00+00:00" in text and "suite commit `0123456789ab`" in text
    assert "not one clean run" not in text
