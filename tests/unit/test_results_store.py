"""results.json: schema-valid at every write, atomic, one record per cell."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness import results, schema

PROV = {"host": {}, "docker": {}, "runtimes": {}, "suite": {}, "started": "2026-01-01T00:00:00+00:00"}


def cell(scenario: str = "resources/shm-size", runtime: str = "runc", outcome: str = "same") -> dict:
    obs = {"observation": {"size_mib": 64}, "refusal": None, "error": None, "host_changes": []}
    return {"scenario": scenario, "runtime": runtime, "outcome": outcome, "reason": None,
            "examples": [{"params": {}, "attempt": 1, "baseline": obs, "target": obs, "outcome": outcome}],
            "attempts": 1, "duration_s": 1.0, "evidence": {"dir": None, "commands": []}}


def test_record_replaces_and_sorts(tmp_path: Path) -> None:
    store = results.ResultsStore(tmp_path, "r1", "runc", ["runc", "runvm"], dict(PROV))
    store.record(cell(runtime="runvm", outcome="differs"))
    store.record(cell(runtime="runc"))
    store.record(cell(runtime="runvm", outcome="same"))
    doc = results.load(tmp_path / "results.json")
    assert [(c["runtime"], c["outcome"]) for c in doc["cells"]] == [("runc", "same"), ("runvm", "same")]


def test_an_invalid_cell_is_refused_and_the_file_keeps_its_last_good_state(tmp_path: Path) -> None:
    store = results.ResultsStore(tmp_path, "r1", "runc", ["runc"], dict(PROV))
    store.record(cell())
    bad = cell(outcome="splendid")
    with pytest.raises(schema.SchemaError, match="outcome"):
        store.record(bad)
    doc = json.loads((tmp_path / "results.json").read_text())
    assert [c["outcome"] for c in doc["cells"]] == ["same"]
    assert store.doc["cells"][0]["outcome"] == "same"


def test_no_temporary_files_are_left(tmp_path: Path) -> None:
    store = results.ResultsStore(tmp_path, "r1", "runc", ["runc"], dict(PROV))
    store.record(cell())
    store.finish("2026-01-01T00:01:00+00:00")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json"]


def test_load_names_the_problem(tmp_path: Path) -> None:
    f = tmp_path / "results.json"
    f.write_text("{not json")
    with pytest.raises(schema.SchemaError, match="not valid JSON"):
        results.load(f)
