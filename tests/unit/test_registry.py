"""limitations.yaml is valid, complete for the catalogue, and every scenario file has an entry."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

from harness import paths, registry, schema

AREAS = ("runtime_commands", "networking", "resources")


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


def test_seed_items_carry_their_upstream_links() -> None:
    seed = (paths.REPO.parent / "shared" / "seeds" / "kata-1.x-limitations.md")
    if not seed.exists():
        pytest.skip("the seed document is not next to this checkout")
    text = seed.read_text()
    links = {line.strip() for entry in registry.load().scenarios.values() for line in entry.get("links", [])}
    seed_issue_links = {w.strip(".,)") for w in text.split() if w.startswith("https://github.com/")
                        and "/issues/" in w}
    assert seed_issue_links <= links


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
