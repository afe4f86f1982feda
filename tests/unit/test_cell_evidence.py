"""The committed per-scenario evidence: written with the document, linked from it, and checked like it."""

from __future__ import annotations

import json
from pathlib import Path

from harness import cli
from harness.render import cell_evidence
from tests.unit import synthetic


def _files(tmp_path: Path) -> tuple[Path, Path, Path]:
    results_file = tmp_path / "reference" / "results.json"
    results_file.parent.mkdir()
    results_file.write_text(json.dumps(synthetic.results()))
    registry_file = tmp_path / "limitations.yaml"
    registry_file.write_text(json.dumps(synthetic.REGISTRY))
    return results_file, registry_file, tmp_path / "docs" / "limitations.md"


def _render(results_file: Path, registry_file: Path, md: Path, *extra: str) -> int:
    return cli.main(["render", "--results", str(results_file), "--registry", str(registry_file),
                     "--out-md", str(md), "--out-html", str(md.parent.parent / "reports" / "matrix.html"), *extra])


def test_each_scenario_gets_a_file_with_its_commands_and_observations() -> None:
    m = synthetic.build(synthetic.registry(), synthetic.results())
    files = cell_evidence.render_all(m)
    assert set(files) == {f"{s.id}.md" for s in m.scenarios}
    text = files[f"{m.scenarios[0].id}.md"]
    assert "## runvm:" in text and "docker run" in text and '"size_mib": 128' in text


def test_render_writes_links_and_check_catches_edits(tmp_path: Path) -> None:
    results_file, registry_file, md = _files(tmp_path)
    assert _render(results_file, registry_file, md) == 0
    evidence_dir = results_file.parent / "evidence"
    some = sorted(evidence_dir.rglob("*.md"))[0]
    rel = some.relative_to(evidence_dir).as_posix()
    assert f"[evidence](../reference/evidence/{rel})" in md.read_text()
    assert f"reference/evidence/{rel}" in (tmp_path / "reports" / "matrix.html").read_text()
    assert _render(results_file, registry_file, md, "--check") == 0

    some.write_text(some.read_text() + "edited by hand\n")
    (evidence_dir / "gone" ).mkdir()
    (evidence_dir / "gone" / "old.md").write_text("a scenario that no longer exists\n")
    assert _render(results_file, registry_file, md, "--check") == 1
    problems = cell_evidence.stale(synthetic.build(synthetic.registry(), synthetic.results()), evidence_dir)
    assert problems == ["gone/old.md is left over", f"{rel} differs"]

    assert _render(results_file, registry_file, md) == 0
    assert not (evidence_dir / "gone" / "old.md").exists()
    assert _render(results_file, registry_file, md, "--check") == 0
