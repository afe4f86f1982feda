"""merge: several hosts' or shards' results into one schema-valid document; disagreements keep the worse."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from harness import cli, merge, results, schema
from harness.render import markdown
from tests.unit import synthetic


def host(run_id: str, hostname: str, overrides: dict | None = None, runtimes: tuple[str, ...] = ("runc", "runvm",
                                                                                                 "runsc")) -> dict:
    doc = synthetic.results(overrides, run_id=run_id, runtimes=runtimes)
    doc["provenance"]["host"]["hostname"] = hostname
    for c in doc["cells"]:
        del c["run_id"]  # older results files may lack it; merge fills it in
    return doc


def test_shards_combine_and_keep_every_provenance() -> None:
    a = host("run-a", "alpha", runtimes=("runc", "runvm"))
    b = host("run-b", "beta", runtimes=("runc", "runsc"))
    merged = merge.merge([b, a])
    schema.validate("results", merged)
    assert merged["runtimes"] == ["runc", "runvm", "runsc"]
    assert sorted(merged["hosts"]) == ["run-a", "run-b"]
    assert merged["hosts"]["run-a"]["host"]["hostname"] == "alpha"
    assert merged["provenance"]["host"]["hostnames"] == ["alpha", "beta"]
    keys = [(c["scenario"], c["runtime"]) for c in merged["cells"]]
    assert len(keys) == len(set(keys)) == 15
    runsc = next(c for c in merged["cells"] if c["runtime"] == "runsc")
    assert runsc["run_id"] == "run-b"
    assert merged["provenance"]["merge"]["conflicts"] == []


def test_a_conflict_keeps_the_worse_outcome_and_records_both() -> None:
    a = host("run-a", "alpha")
    b = host("run-b", "beta", {("resources/shm-size", "runvm"): "differs"})
    merged = merge.merge([a, b])
    cell = next(c for c in merged["cells"] if (c["scenario"], c["runtime"]) == ("resources/shm-size", "runvm"))
    assert (cell["outcome"], cell["run_id"]) == ("differs", "run-b")
    assert merged["provenance"]["merge"]["conflicts"] == [{
        "scenario": "resources/shm-size", "runtime": "runvm", "kept": {"run_id": "run-b", "outcome": "differs"},
        "observed": [{"run_id": "run-a", "outcome": "same"}, {"run_id": "run-b", "outcome": "differs"}]}]
    text = markdown.render(synthetic.build(synthetic.registry(), merged))
    assert "Runs disagree for runvm (same in run run-a, differs in run run-b); differs from run run-b is " \
           "shown." in text
    assert "Where runs disagree about a cell, the worse outcome is kept, and the scenario says so." in text
    assert "### run run-a" in text and "### run run-b" in text


def test_error_beats_everything_and_an_informative_cell_beats_baseline_unavailable() -> None:
    assert merge.badness("error") > merge.badness("host-impact") > merge.badness("refused")
    assert merge.badness("refused") > merge.badness("flaky") > merge.badness("differs") > merge.badness("same")
    assert merge.badness("same") > merge.badness("baseline-unavailable") > merge.badness("not-run")


def test_merge_is_deterministic_and_order_independent() -> None:
    a, b = host("run-a", "alpha"), host("run-b", "beta", {("runtime_commands/ps", "runsc"): "refused"})
    one = merge.merge([copy.deepcopy(a), copy.deepcopy(b)])
    two = merge.merge([copy.deepcopy(b), copy.deepcopy(a)])
    assert one == two
    assert one["run_id"].startswith("merged-")


def test_merging_a_merged_document_again_keeps_earlier_conflicts() -> None:
    ab = merge.merge([host("run-a", "alpha"), host("run-b", "beta", {("resources/shm-size", "runvm"): "differs"})])
    abc = merge.merge([ab, host("run-c", "gamma")])
    assert sorted(abc["hosts"]) == ["run-a", "run-b", "run-c"]
    (conflict,) = abc["provenance"]["merge"]["conflicts"]
    assert [o["run_id"] for o in conflict["observed"]] == ["run-a", "run-b", "run-c"]
    assert conflict["kept"] == {"run_id": "run-b", "outcome": "differs"}


def test_different_baselines_do_not_merge() -> None:
    b = host("run-b", "beta")
    b["baseline"] = "crun"
    with pytest.raises(merge.MergeError, match="different baselines"):
        merge.merge([host("run-a", "alpha"), b])


def test_a_reused_run_id_with_different_provenance_is_refused() -> None:
    with pytest.raises(merge.MergeError, match="run id run-a"):
        merge.merge([host("run-a", "alpha"), host("run-a", "beta")])


def test_cli_merge(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    paths = []
    for doc in (host("run-a", "alpha"), host("run-b", "beta", {("resources/shm-size", "runvm"): "refused"})):
        p = tmp_path / f"{doc['run_id']}.json"
        p.write_text(json.dumps(doc))
        paths.append(str(p))
    out = tmp_path / "merged.json"
    assert cli.main(["merge", *paths, "--out", str(out), "--run-id", "fleet-1"]) == 0
    doc = results.load(out)
    assert doc["run_id"] == "fleet-1"
    assert "1 conflicting cell (the worse outcome is kept)" in capsys.readouterr().out


def test_prefer_latest_keeps_the_rerun() -> None:
    first = host("run-a", "alpha", {("resources/shm-size", "runvm"): "differs"})
    rerun = host("run-b", "alpha")
    rerun["provenance"]["started"] = "2026-01-02T00:00:00+00:00"
    merged = merge.merge([rerun, first], prefer=merge.LATEST)
    cell = next(c for c in merged["cells"] if (c["scenario"], c["runtime"]) == ("resources/shm-size", "runvm"))
    assert (cell["outcome"], cell["run_id"]) == ("same", "run-b")
    assert merged["provenance"]["merge"]["conflicts"][0]["kept"] == {"run_id": "run-b", "outcome": "same"}
