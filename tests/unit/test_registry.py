"""limitations.yaml is valid, complete for the catalogue, and every scenario file has an entry."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

from harness import paths, registry, schema

AREAS = tuple(registry.load().raw["areas"])


def declared_ids() -> dict[str, Path]:
    """Scenario ids from the @scenario decorators, read without importing (no Docker needed)."""
    found = {}
    for area in AREAS:
        for f in sorted((paths.REPO / "tests" / area).glob("test_*.py")):
            for node in ast.walk(ast.parse(f.read_text())):
                if (isinstance(node, ast.Call) and getattr(node.func, "id", None) == "scenario" and node.args
                        and isinstance(node.args[0], ast.Constant)):
                    found[node.args[0].value] = f
    return found


def test_registry_is_valid() -> None:
    reg = registry.load()
    assert len(reg.scenarios) >= 29


def test_every_scenario_file_is_registered_and_every_entry_has_a_file() -> None:
    reg = registry.load()
    files = declared_ids()
    assert sorted(set(files) - set(reg.scenarios)) == []
    assert sorted(set(reg.scenarios) - set(files)) == []


def test_one_file_per_scenario_named_after_it() -> None:
    for scenario_id, f in declared_ids().items():
        area, name = scenario_id.split("/")
        assert f.parent.name == area
        assert f.name == f"test_{name.replace('-', '_')}.py"


def test_every_entry_has_expectations_for_the_suites_runtimes() -> None:
    for sid, entry in registry.load().scenarios.items():
        for runtime in ("runc", "runsc", "runvm"):
            assert runtime in entry["expect"], f"{sid} has no expectation for {runtime}"


SEED = Path(__file__).parent / "data" / "kata-1.x-seed.yaml"


def test_every_seed_item_is_covered_with_its_upstream_links() -> None:
    """Each item of the seed document is a scenario (or several) in the registry, in the section the seed put it
    (its appendix's constraints challenge became everyday rows), carrying every issue the seed cites for it."""
    scenarios = registry.load().scenarios
    for item in yaml.safe_load(SEED.read_text())["items"]:
        assert item["scenarios"], f"seed item {item['title']!r} is covered by no scenario"
        missing = [sid for sid in item["scenarios"] if sid not in scenarios]
        assert missing == [], f"seed item {item['title']!r} names scenarios not in the registry: {missing}"
        if item["section"] != "appendix":
            assert {scenarios[sid]["section"] for sid in item["scenarios"]} == {item["section"]}, item["title"]
        cited = {link for sid in item["scenarios"] for link in scenarios[sid].get("links", [])}
        assert set(item["links"]) <= cited, f"{item['title']!r} lacks {sorted(set(item['links']) - cited)}"


def test_schema_rejects_a_bad_outcome(tmp_path: Path) -> None:
    raw = yaml.safe_load(paths.REGISTRY.read_text())
    raw["scenarios"][0]["expect"]["runc"]["outcome"] = "works-great"
    bad = tmp_path / "limitations.yaml"
    bad.write_text(yaml.safe_dump(raw))
    with pytest.raises(schema.SchemaError, match="expect/runc/outcome"):
        registry.load(bad)


def test_duplicate_ids_are_refused(tmp_path: Path) -> None:
    raw = yaml.safe_load(paths.REGISTRY.read_text())
    raw["scenarios"].append(dict(raw["scenarios"][0]))
    bad = tmp_path / "limitations.yaml"
    bad.write_text(yaml.safe_dump(raw))
    with pytest.raises(schema.SchemaError, match="duplicate"):
        registry.load(bad)


def test_a_column_note_tolerates_its_outcomes_on_that_stack_only() -> None:
    from harness.outcomes import Outcome, Verdict

    raw = dict(registry.load().raw)
    raw["columns"] = {"runvm@current": {"tolerate": ["refused"], "reason": "this build crashes"}}
    schema.validate("registry", raw)
    reg = registry.Registry(raw)
    sid = next(iter(reg.scenarios))
    there, here = reg.expectation(sid, "runvm@current"), reg.expectation(sid, "runvm")
    assert there is not None and here is not None
    assert there.judge(Outcome.REFUSED) is Verdict.EXPECTED and there.reason.endswith("this build crashes")
    assert Outcome.REFUSED not in here.tolerate and "this build" not in here.reason
    assert reg.expectation(sid, "runvm@debian12") == here
