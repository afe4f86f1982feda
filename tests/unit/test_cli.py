"""The `vmparity` command line: argument pass-through to pytest, the progress plugin, run's renders."""

from __future__ import annotations

import io
import json
import textwrap
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from harness import cli, paths
from harness.progress import CellProgress
from tests.unit import synthetic


def test_run_passes_its_options_and_everything_after_the_double_dash_to_pytest(tmp_path: Path) -> None:
    argv = ["run", "--runtime", "runvm", "--runtime", "runsc", "--repeat", "3", "--examples", "7", "--profile",
            "deep", "--run-dir", str(tmp_path)]
    args = cli.parser().parse_args(argv)
    got = cli.pytest_args(args, tmp_path, ["-k", "shm", "-x"])
    assert got[:3] == [str(paths.REPO / d) for d in cli.SCENARIO_DIRS]
    joined = " ".join(got)
    for fragment in (f"--run-dir {tmp_path}", "--baseline runc", "--repeat 3", "--examples 7", "--profile deep",
                     "--runtime runvm --runtime runsc"):
        assert fragment in joined
    assert got[-3:] == ["-k", "shm", "-x"]


def test_double_dash_is_only_for_run() -> None:
    with pytest.raises(SystemExit):
        cli.main(["diff", "a", "b", "--", "-k", "x"])


def test_every_subcommand_is_declared() -> None:
    sub = next(a for a in cli.parser()._actions if a.dest == "command")
    assert {"run", "render", "diff", "gate", "merge"} <= set(sub.choices)


CONFTEST = '''
import types

def pytest_configure(config):
    cells = [{"scenario": "resources/shm-size", "runtime": "runvm", "outcome": "differs"},
             {"scenario": "resources/shm-size", "runtime": "runc", "outcome": "same"}]
    config._vmparity_session = types.SimpleNamespace(store=types.SimpleNamespace(doc={"cells": cells}))
'''

TESTS = '''
import pytest

class Spec:
    id = "resources/shm-size"

@pytest.mark.parametrize("target", ["runc", "runvm"])
def test_shm(target):
    pass

test_shm.scenario = Spec()

def test_plain_failure():
    assert False, "deliberate"
'''


def test_progress_plugin_advances_per_cell_and_reports_outcomes(tmp_path: Path) -> None:
    (tmp_path / "conftest.py").write_text(textwrap.dedent(CONFTEST))
    (tmp_path / "test_fake.py").write_text(textwrap.dedent(TESTS))
    out = io.StringIO()
    plugin = CellProgress(Console(file=out, width=200, force_terminal=False))
    code = pytest.main([str(tmp_path), "-p", "no:cacheprovider", "--rootdir", str(tmp_path)], plugins=[plugin])
    assert code == 1
    assert plugin.finished == 3
    assert plugin.cells == {f"test_fake.py::test_shm[{t}]": ("resources/shm-size", t) for t in ("runc", "runvm")}
    assert plugin.outcomes == {"same": 1, "differs": 1}
    assert len(plugin.failures) == 1 and "deliberate" in plugin.failures[0]
    assert "failed test_fake.py::test_plain_failure" in out.getvalue()


def test_run_renders_the_runs_reports_next_to_its_results(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    registry_file = tmp_path / "limitations.yaml"
    registry_file.write_text(json.dumps(synthetic.REGISTRY))
    run_dir = tmp_path / "run"
    seen: dict[str, Any] = {}

    def fake_main(args: list[str], plugins: list[object]) -> int:
        seen["args"], seen["plugins"] = args, plugins
        run_dir.mkdir()
        (run_dir / "results.json").write_text(json.dumps(synthetic.results()))
        return 0

    monkeypatch.setattr(pytest, "main", fake_main)
    assert cli.main(["run", "--run-dir", str(run_dir), "--registry", str(registry_file), "--plain"]) == 0
    assert seen["plugins"] == []
    assert sorted(p.name for p in run_dir.iterdir()) == ["junit.xml", "limitations.md", "matrix.html",
                                                         "results.json"]
    assert "runvm: 3 same | 1 differs | 1 baseline-unavailable" in capsys.readouterr().out


def test_reference_copies_a_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "results.json").write_text(json.dumps(synthetic.results(run_id="ref-1")))
    target = tmp_path / "reference" / "results.json"
    monkeypatch.setattr(cli, "DEFAULT_RESULTS", target)
    registry_file = tmp_path / "limitations.yaml"
    registry_file.write_text(json.dumps(synthetic.REGISTRY))
    assert cli.main(["reference", str(run_dir), "--registry", str(registry_file)]) == 0
    assert json.loads(target.read_text())["run_id"] == "ref-1"
