"""Evidence strings: flattened observations side by side, matched by parameters, long texts shortened."""

from __future__ import annotations

from harness.render import evidence
from tests.unit import synthetic


def test_flatten_uses_dotted_keys_and_keeps_lists_whole() -> None:
    flat = evidence.flatten({"b": {"y": 1, "x": [1, 2]}, "a": None, "c": {}})
    assert flat == {"a": None, "b.x": [1, 2], "b.y": 1, "c": {}}


def test_values_are_short_tokens() -> None:
    assert evidence.value_text(True) == "true"
    assert evidence.value_text(None) == "null"
    assert evidence.value_text("peer-on-n2") == "peer-on-n2"
    assert evidence.value_text("") == '""'
    assert evidence.value_text(["lo", "eth0"]) == '["lo","eth0"]'
    assert len(evidence.value_text("z" * 500)) <= 60


def test_shorten_drops_dockers_prefixes_and_keeps_both_ends() -> None:
    text = ("docker run --runtime=runvm: Error response from daemon: failed to create shim task: "
            "OCI runtime create failed: " + "detail " * 60 + "unable to apply caps: operation not permitted")
    short = evidence.shorten(text, 120)
    assert len(short) <= 120
    assert short.startswith("docker run --runtime=runvm:")
    assert short.endswith("unable to apply caps: operation not permitted")
    assert "Error response from daemon" not in short and " … " in short


def test_line_text_side_by_side_and_agreed() -> None:
    differs = evidence.Line("size_mib", (("runc", "128"), ("runvm", "128"), ("runsc", "64")))
    assert differs.text() == "size_mib: runc 128 · runvm 128 · runsc 64"
    assert differs.markdown() == "`size_mib`: runc `128` · runvm `128` · runsc `64`"
    agreed = evidence.Line("size_mib", (("runc", "128"), ("runvm", "128")))
    assert agreed.text() == "size_mib: 128 (all)"


def test_code_spans_survive_backticks() -> None:
    assert evidence.code("a`b") == "``a`b``"
    assert evidence.code("`x`") == "`` `x` ``"


def test_examples_are_matched_by_parameters_across_runtimes() -> None:
    def ex(mib: int, size: int) -> dict:
        return {"params": {"mib": mib}, "attempt": 1, "outcome": "same" if mib == size else "differs",
                "baseline": synthetic.observed({"size_mib": mib}), "target": synthetic.observed({"size_mib": size})}

    runvm = {"examples": [ex(128, 128), ex(8, 8)]}
    runsc = {"examples": [ex(8, 64), ex(128, 64), ex(224, 64)]}
    ev = evidence.build([("runvm", runvm), ("runsc", runsc)], "runc")
    by_params = {e.params: [line.text() for line in e.lines] for e in ev.examples}
    assert by_params == {
        "mib=128": ["size_mib: runc 128 · runvm 128 · runsc 64"],
        "mib=8": ["size_mib: runc 8 · runvm 8 · runsc 64"],
        "mib=224": ["size_mib: runc 224 · runsc 64"],  # runvm did not draw this value
    }
    assert ev.examples[0].heading() == "mib=128 · runvm same, runsc differs"


def test_differences_come_first_and_agreeing_keys_are_capped() -> None:
    base = {f"k{i:02}": i for i in range(20)}
    target = {**base, "k19": "other"}
    ev = evidence.build([("runvm", synthetic.cell("resources/shm-size", "runvm", "differs",
                                                  target=synthetic.observed(target),
                                                  baseline=synthetic.observed(base)))], "runc", max_agreed=3)
    (e,) = ev.examples
    assert e.lines[0].text() == "k19: runc 19 · runvm other"
    assert len(e.lines) == 3 and e.hidden == 17


def test_refusal_error_and_host_change_lines() -> None:
    cells = [
        ("runvm", synthetic.cell("x/y", "runvm", "refused", target=synthetic.observed(refusal="docker run: no"))),
        ("runsc", synthetic.cell("x/y", "runsc", "error",
                                 target=synthetic.observed(error="Traceback\n  f()\nKeyError: 'a'"))),
        ("kata", synthetic.cell("x/y", "kata", "host-impact",
                                target=synthetic.observed({"size_mib": 128}, host_changes=["added: link tap0"]))),
    ]
    (e,) = evidence.build(cells, "runc").examples
    texts = [line.text() for line in e.lines]
    assert texts[0] == "refused: runc — · runvm docker run: no · runsc — · kata —"
    assert texts[1] == "suite error: runc — · runvm — · runsc KeyError: 'a' · kata —"
    assert texts[2] == "host changes: runc none · runvm none · runsc none · kata 1 new, e.g. added: link tap0"


def test_many_examples_keep_the_interesting_ones() -> None:
    def ex(mib: int, outcome: str) -> dict:
        return {"params": {"mib": mib}, "attempt": 1, "outcome": outcome,
                "baseline": synthetic.observed({"size_mib": mib}),
                "target": synthetic.observed({"size_mib": mib if outcome == "same" else 64})}

    cell = {"examples": [ex(m, "same") for m in range(1, 8)] + [ex(100, "differs")]}
    ev = evidence.build([("runvm", cell)], "runc", max_examples=3)
    assert [e.params for e in ev.examples] == ["mib=1", "mib=2", "mib=100"]
    assert ev.omitted == 5


def test_a_cell_from_another_runs_baseline_gets_its_own_baseline_column() -> None:
    here = synthetic.cell("x/y", "runvm", "same", baseline=synthetic.observed({"size_mib": 128}))
    there = synthetic.cell("x/y", "runsc", "same", baseline=synthetic.observed({"size_mib": 64}),
                           target=synthetic.observed({"size_mib": 64}))
    (e,) = evidence.build([("runvm", here), ("runsc", there)], "runc").examples
    assert [line.text() for line in e.lines] == ["size_mib: runc 128 · runvm 128 · runc for runsc 64 · runsc 64"]
