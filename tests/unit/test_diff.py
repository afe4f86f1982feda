"""diff A B: each cell improved, regressed, changed, added, removed or unchanged, by outcome rank."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness import cli, diff
from harness.outcomes import Outcome
from tests.unit import synthetic


@pytest.mark.parametrize(("before", "after", "change"), [
    ("same", "same", diff.Change.UNCHANGED),
    ("same", "differs", diff.Change.REGRESSED),
    ("refused", "differs", diff.Change.IMPROVED),
    ("flaky", "host-impact", diff.Change.REGRESSED),
    ("same", "error", diff.Change.REGRESSED),
    ("error", "refused", diff.Change.IMPROVED),
    ("same", "baseline-unavailable", diff.Change.CHANGED),
    ("not-run", "same", diff.Change.CHANGED),
])
def test_compare(before: str, after: str, change: diff.Change) -> None:
    assert diff.compare(Outcome(before), Outcome(after)) == change


def pair() -> tuple[dict, dict]:
    a = synthetic.results({("resources/shm-size", "runvm"): "differs"}, run_id="a")
    b = synthetic.results({("runtime_commands/ps", "runsc"): "refused"}, run_id="b")
    a["cells"] = [c for c in a["cells"] if c["scenario"] != "runtime_commands/exec" or c["runtime"] != "runsc"]
    b["cells"] = [c for c in b["cells"] if c["scenario"] != "resources/privileged" or c["runtime"] != "runc"]
    return a, b


def test_diff_classifies_every_cell() -> None:
    a, b = pair()
    changes = {(c.scenario, c.runtime): c for c in diff.diff(a, b)}
    assert changes[("resources/shm-size", "runvm")].change == diff.Change.IMPROVED
    assert changes[("runtime_commands/ps", "runsc")].change == diff.Change.REGRESSED
    assert changes[("runtime_commands/exec", "runsc")].change == diff.Change.ADDED
    assert changes[("resources/privileged", "runc")].change == diff.Change.REMOVED
    assert diff.counts(list(changes.values())) == {"regressed": 1, "improved": 1, "changed": 0, "added": 1,
                                                    "removed": 1, "unchanged": 11}


def test_text_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a, b = pair()
    pa, pb = tmp_path / "a.json", tmp_path / "b.json"
    pa.write_text(json.dumps(a))
    pb.write_text(json.dumps(b))
    assert cli.main(["diff", str(pa), str(pb)]) == 0
    text = capsys.readouterr().out.splitlines()
    assert text[0] == "a -> b: 1 regressed, 1 improved, 0 changed, 1 added, 1 removed, 11 unchanged"
    assert text[1].split() == ["regressed", "runtime_commands/ps", "@", "runsc:", "same", "->", "refused"]
    assert len(text) == 5  # unchanged cells only with --all
    assert cli.main(["diff", str(pa), str(pb), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["before"] == "a" and doc["after"] == "b" and doc["counts"]["regressed"] == 1
    assert {"scenario": "resources/privileged", "runtime": "runc", "change": "removed",
            "before": "baseline-unavailable", "after": None} in doc["cells"]
