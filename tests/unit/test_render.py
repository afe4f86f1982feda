"""docs/limitations.md: deterministic, complete, and guarded by `render --check`."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from harness import cli
from harness.outcomes import MEANINGS, SYMBOLS, Outcome
from harness.render import markdown
from tests.unit import synthetic


def render(doc: dict | None = None) -> str:
    return markdown.render(synthetic.build(synthetic.registry(), doc or synthetic.results()))


def section(text: str, heading: str) -> str:
    """The text from `heading` to the next heading of the same or a higher level."""
    start = text.index(heading)
    level = heading.split(" ", 1)[0]
    rest = text[start + len(heading):]
    ends = [rest.find(f"\n{'#' * n} ") for n in range(1, len(level) + 1)]
    ends = [e for e in ends if e >= 0]
    return heading + (rest[:min(ends)] if ends else rest)


def test_rendering_twice_gives_identical_bytes() -> None:
    doc = synthetic.results({("resources/shm-size", "runvm"): "differs"})
    first = render(copy.deepcopy(doc)).encode()
    second = render(copy.deepcopy(doc)).encode()
    assert first == second


def test_cell_order_in_the_input_does_not_matter() -> None:
    doc = synthetic.results()
    shuffled = copy.deepcopy(doc)
    shuffled["cells"].reverse()
    assert render(doc) == render(shuffled)


def test_legend_defines_every_outcome() -> None:
    text = section(render(), "## How to read this document")
    for o in Outcome:
        assert SYMBOLS[o] in text and MEANINGS[o] in text and f"| {o.value} " in text


def test_matrix_has_a_row_per_scenario_and_a_column_per_runtime() -> None:
    text = section(render(), "## The matrix")
    header = next(line for line in text.splitlines() if line.startswith("| scenario"))
    assert [h.strip() for h in header.strip("|").split("|")][3:] == ["runc (A/A)", "runvm", "runsc", "kata"]
    rows = [line for line in text.splitlines() if line.startswith("| [")]
    assert len(rows) == len(synthetic.REGISTRY["scenarios"])


def test_a_runtime_absent_from_the_run_is_a_not_run_column_with_the_registry_expectation() -> None:
    text = render()
    top = next(line for line in section(text, "## The matrix").splitlines() if "[docker top]" in line)
    assert top.rstrip(" |").endswith("⏭️ not run (expected ❌ refused)")
    ps = section(text, "#### docker top")
    kata = next(line for line in ps.splitlines() if line.startswith("| kata"))
    assert "not in this run" in kata and "no ps command" in kata


def test_each_scenario_has_its_text_outcomes_evidence_workaround_and_links() -> None:
    doc = synthetic.results({("resources/shm-size", "runvm"): "differs"})
    text = section(render(doc), "#### docker run --shm-size")
    assert "The size of /dev/shm." in text
    assert "**What the oracle reads:** df on /dev/shm." in text
    assert "**Workaround:** Mount a tmpfs." in text
    assert "[kata-containers/kata-containers#21](https://github.com/kata-containers/kata-containers/issues/21)" in text
    runvm = next(line for line in text.splitlines() if line.startswith("| runvm"))
    assert "⚠️ differs" in runvm and "✅ same" in runvm and "regression" in runvm
    runsc = next(line for line in text.splitlines() if line.startswith("| runsc"))
    assert "| expected " in runsc and "[google/gvisor#1](https://github.com/google/gvisor/issues/1)" in runsc
    assert "- `size_mib`: runc `128` · runvm `64` · runsc `64`" in text
    assert "- `mounts.shm`: `tmpfs` (all)" in text


def test_an_unexpected_pass_is_called_so() -> None:
    text = render(synthetic.results({("resources/shm-size", "runsc"): "same"}))
    line = next(ln for ln in section(text, "#### docker run --shm-size").splitlines() if ln.startswith("| runsc"))
    assert "unexpected pass" in line
    assert "unexpected pass" in section(text, "### Where the run and the registry disagree")


def test_refusals_show_their_text_shortened() -> None:
    long_refusal = "docker run --runtime=runvm busybox: Error response from daemon: " + "x" * 400 + " the cause"
    doc = synthetic.results({("runtime_commands/exec", "runvm"): "refused"})
    cell = next(c for c in doc["cells"] if (c["scenario"], c["runtime"]) == ("runtime_commands/exec", "runvm"))
    cell["examples"][0]["target"]["refusal"] = long_refusal
    text = section(render(doc), "#### docker exec")
    line = next(ln for ln in text.splitlines() if ln.startswith("- `refused`"))
    assert "runvm `docker run --runtime=runvm busybox: " in line and "the cause`" in line and " … " in line
    assert "Error response from daemon" not in line
    assert len(line) < 260


def test_baseline_unavailable_shows_runcs_refusal() -> None:
    text = section(render(), "#### docker run --privileged")
    assert "- `refused`: runc `docker run --privileged: unable to apply caps: operation not permitted`" in text
    assert "A/A" not in text.split("**Evidence**")[1]


def test_provenance_footer() -> None:
    text = section(render(), "## Provenance")
    for fact in ("run-1", "6.1.0-test", "Debian GNU/Linux 12", "v2 (unified)", "20.10.24", "containerd 1.6.20",
                 "runc version 1.1.5", "runsc 2022", "args --network=host", "runvm: kvm", "0123456789abcdef",
                 "2026-01-01T00:00:00+00:00", "2026-01-01T00:10:00+00:00"):
        assert fact in text, fact


def test_a_cell_for_an_unregistered_scenario_is_shown_and_flagged() -> None:
    doc = synthetic.results()
    doc["cells"].append(synthetic.cell("resources/brand-new", "runvm", "same"))
    text = render(doc)
    assert "## Not in the registry" in text
    assert "not described in limitations.yaml" in section(text, "#### resources/brand-new")


def test_pipes_in_registry_text_do_not_break_tables() -> None:
    reg = synthetic.registry()
    exec_entry = next(e for e in reg.raw["scenarios"] if e["id"] == "runtime_commands/exec")
    exec_entry["expect"]["runvm"]["reason"] = "stdin | stdout"
    text = section(markdown.render(synthetic.build(reg, synthetic.results())), "#### docker exec")
    row = next(line for line in text.splitlines() if line.startswith("| runvm"))
    assert "stdin \\| stdout" in row
    assert len(row.replace("\\|", "").split("|")) == 7  # five columns


def write_reference(tmp_path: Path, doc: dict) -> tuple[Path, Path]:
    results_path = tmp_path / "results.json"
    results_path.write_text(json.dumps(doc))
    registry_path = tmp_path / "limitations.yaml"
    registry_path.write_text(json.dumps(synthetic.REGISTRY))  # JSON is YAML
    return results_path, registry_path


def test_render_check_passes_when_current_and_fails_after_a_hand_edit(tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    results_path, registry_path = write_reference(tmp_path, synthetic.results())
    md = tmp_path / "limitations.md"
    common = ["--results", str(results_path), "--registry", str(registry_path), "--out-md", str(md)]
    assert cli.main(["render", *common, "--no-html"]) == 0
    assert cli.main(["render", *common, "--check"]) == 0

    text = md.read_text()
    row = next(line for line in text.splitlines() if line.startswith("| [docker exec]"))
    md.write_text(text.replace(row, row.replace("✅ same", "⚠️ differs", 1), 1))
    capsys.readouterr()
    assert cli.main(["render", *common, "--check"]) == 1
    out = capsys.readouterr().out
    assert "stale or was edited by hand" in out and "docker exec" in out


def test_render_check_fails_when_the_results_change(tmp_path: Path) -> None:
    results_path, registry_path = write_reference(tmp_path, synthetic.results())
    md = tmp_path / "limitations.md"
    common = ["--results", str(results_path), "--registry", str(registry_path), "--out-md", str(md)]
    assert cli.main(["render", *common, "--no-html"]) == 0
    results_path.write_text(json.dumps(synthetic.results({("resources/shm-size", "runvm"): "differs"})))
    assert cli.main(["render", *common, "--check"]) == 1


def test_render_writes_markdown_html_and_junit(tmp_path: Path) -> None:
    results_path, registry_path = write_reference(tmp_path, synthetic.results())
    out = tmp_path / "out"
    assert cli.main(["render", "--results", str(results_path), "--registry", str(registry_path),
                     "--out-md", str(out / "l.md"), "--out-html", str(out / "m.html"),
                     "--junit", str(out / "j.xml")]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["j.xml", "l.md", "m.html"]


def test_missing_results_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="no results at"):
        cli.main(["render", "--results", str(tmp_path / "nope.json"), "--out-md", str(tmp_path / "x.md")])
