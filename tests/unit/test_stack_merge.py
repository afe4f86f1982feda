"""Runs on several stacks in one document: a column per runtime and stack, the leading stack first, each stack
judged by its runtime's expectations, version drift found, and the document accepted as a reference when each
run is clean."""

from __future__ import annotations

import copy
from typing import Any

from harness import merge, reference
from harness.matrix import base_runtime, stack_of
from harness.outcomes import Outcome
from tests.unit import synthetic


def _on(stack: str, run_id: str, overrides: dict[tuple[str, str], str] | None = None) -> dict[str, Any]:
    doc = synthetic.results(overrides, run_id=run_id)
    doc["provenance"]["stack"] = {"name": stack, "kind": "host" if stack == "debian12" else "container",
                                  "components": {"docker": "28.5.2" if stack == "current" else "20.10.24"}}
    return doc


def test_runs_on_two_stacks_become_columns_not_conflicts() -> None:
    some = synthetic.REGISTRY["scenarios"][0]["id"]
    merged = merge.merge([_on("debian12", "r-old"), _on("current", "r-new", {(some, "runvm"): "differs"})])
    assert merged["provenance"]["merge"]["conflicts"] == []
    assert merged["provenance"]["stack_order"] == ["current", "debian12"]
    assert {c["runtime"] for c in merged["cells"]} == {f"{r}@{s}" for r in ("runc", "runvm", "runsc")
                                                       for s in ("current", "debian12")}
    m = synthetic.build(synthetic.registry(), merged)
    names = [r.name for r in m.runtimes if r.in_run]
    assert names[:3] == ["runc@current", "runvm@current", "runsc@current"], names
    assert [r.label for r in m.runtimes][:2] == ["runc (A/A)@current", "runvm@current"]
    s = m.scenario(some)
    assert s.drift == (("runvm", (("current", Outcome.DIFFERS), ("debian12", Outcome.SAME))),)
    # each stack's column is judged by the runtime's expectation
    assert s.cell("runvm@debian12").expectation == s.cell("runvm@current").expectation is not None


def test_a_clean_merge_by_stack_is_a_fine_reference_and_a_same_stack_merge_is_not() -> None:
    registered = {s["id"] for s in synthetic.REGISTRY["scenarios"]}
    by_stack = merge.merge([_on("debian12", "a"), _on("current", "b")])
    assert reference.problems(by_stack, registered) == []
    same_stack = merge.merge([_on("current", "a"), _on("current", "b")])
    assert any("merges several runs of one stack" in p for p in reference.problems(same_stack, registered))
    dirty = _on("current", "b")
    dirty["provenance"]["suite"] = {"commit": "0123456789abcdef", "dirty": True}
    found = reference.problems(merge.merge([_on("debian12", "a"), copy.deepcopy(dirty)]), registered)
    assert found == ["run b: the suite had uncommitted changes when it started"]


def test_names() -> None:
    assert base_runtime("runvm@current") == "runvm" and stack_of("runvm@current") == "current"
    assert base_runtime("runvm") == "runvm" and stack_of("runvm") is None


def test_drift_is_rendered_warned_and_in_junit(tmp_path: Any) -> None:
    from harness import gate, junit
    from harness.render import html, markdown

    some = synthetic.REGISTRY["scenarios"][0]["id"]
    merged = merge.merge([_on("debian12", "a"), _on("current", "b", {(some, "runvm"): "differs"})])
    m = synthetic.build(synthetic.registry(), merged)
    text = markdown.render(m)
    assert "### Version drift" in text and "current: differs · debian12: same" in text
    assert "Version drift: runvm is differs on current, same on debian12" in text
    assert "- `current`: Docker 28.5.2" in text
    assert "version drift: differs on current, same on debian12" in html.render(m)
    drift = [f for f in gate.check(m) if f.kind == "version drift"]
    assert [(f.scenario, f.runtime, f.level.value) for f in drift] == [(some, "runvm", "WARN")]
    junit.write(m, tmp_path / "j.xml")
    assert 'name="version_drift" value="differs on current, same on debian12"' in (tmp_path / "j.xml").read_text()


def test_a_shard_from_another_host_joins_a_matrix_already_merged_by_stack() -> None:
    """The cgroup2 machine's run (one stack) added to the main job's matrix (two): a third set of columns."""
    main = merge.merge([_on("debian12", "a"), _on("current", "b")])
    shard = _on("cgroup2", "c")
    shard["provenance"]["stack"]["kind"] = "vm"
    merged = merge.merge([main, shard])
    assert merged["provenance"]["stack_order"] == ["current", "debian12", "cgroup2"]
    assert {c["runtime"] for c in merged["cells"] if c["run_id"] == "c"} == {"runc@cgroup2", "runvm@cgroup2",
                                                                              "runsc@cgroup2"}
    assert merged["provenance"]["merge"]["conflicts"] == []
    assert sorted(merged["hosts"]) == ["a", "b", "c"]
    assert reference.problems(merged, {s["id"] for s in synthetic.REGISTRY["scenarios"]}) == []
