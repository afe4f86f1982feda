"""JUnit XML for a run: one testcase per cell, so CI dashboards show the matrix as tests.

Regressions and unexpected passes are failures (both fail the gate), error cells are errors, cells without a
result are skipped, and every other cell passes with its evidence as system-out. Runtimes the run did not
include are left out: there is nothing to report for them.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from harness.matrix import CellView, Matrix, base_runtime
from harness.outcomes import Outcome, Verdict
from harness.render import evidence
from harness.render.words import cell_documented, verdict_text

_FAILING = {Verdict.REGRESSION: "regression", Verdict.UNEXPECTED_PASS: "unexpected-pass"}


def _message(c: CellView) -> str:
    expected = c.expectation.outcome.value if c.expectation else "none"
    text = f"observed {c.outcome.value}, expected {expected}"
    if c.documented is not None:
        text += f"; {cell_documented(c)}"
        if c.expectation is not None and c.expectation.documented is not None:
            text += f", expected documented {c.expectation.documented}"
    if c.expectation is not None:
        text += f" ({c.expectation.reason})"
        if c.expectation.link:
            text += f" {c.expectation.link}"
    return text


def _evidence_text(m: Matrix, c: CellView) -> str:
    if c.record is None:
        return ""
    ev = evidence.build([(evidence.target_label(c.runtime, m.baseline), c.record)], m.baseline, max_examples=8,
                        max_agreed=12)
    out = []
    for e in ev.examples:
        out.append(e.heading())
        out += [f"  {line.text()}" for line in e.lines]
    return "\n".join(out)


def _testcase(m: Matrix, c: CellView) -> tuple[ET.Element, str]:
    area, _, name = c.scenario.partition("/")
    duration = (c.record or {}).get("duration_s") or 0
    case = ET.Element("testcase", {"classname": f"vmparity.{c.runtime}.{area}", "name": name,
                                   "time": f"{float(duration):.2f}"})
    text = _evidence_text(m, c)
    drift = [", ".join(f"{o.value} on {stack}" for stack, o in seen)
             for rt, seen in m.scenario(c.scenario).drift if rt == base_runtime(c.runtime)]
    if drift:  # a property, so CI dashboards can list the cells that depend on the Docker stack
        props = ET.SubElement(case, "properties")
        ET.SubElement(props, "property", {"name": "version_drift", "value": drift[0]})
    if c.outcome == Outcome.ERROR:
        errors = [ex["target"]["error"] or ex["baseline"]["error"] for ex in (c.record or {}).get("examples", [])
                  if ex["target"]["error"] or ex["baseline"]["error"]]
        ET.SubElement(case, "error", {"message": f"suite error: {_message(c)}", "type": "suite-error"}).text = (
            errors[0] if errors else (c.note or text))
        return case, "error"
    if c.verdict in _FAILING:
        message = f"{verdict_text(c)}: {_message(c)}"
        ET.SubElement(case, "failure", {"message": message, "type": _FAILING[c.verdict]}).text = text
        return case, "failure"
    if c.documented_verdict in _FAILING:
        kind = _FAILING[c.documented_verdict]  # type: ignore[index]
        ET.SubElement(case, "failure", {"message": f"documented {kind}: {_message(c)}",
                                        "type": f"documented-{kind}"}).text = text
        return case, "failure"
    if c.record is None or c.outcome == Outcome.NOT_RUN:
        ET.SubElement(case, "skipped", {"message": c.note or "not run"})
        return case, "skipped"
    ET.SubElement(case, "system-out").text = f"{_message(c)}\n{text}".rstrip()
    return case, "passed"


def build(m: Matrix) -> ET.ElementTree:
    root = ET.Element("testsuites", {"name": f"vmparity {m.run_id}"})
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for runtime in m.run_runtimes:
        suite = ET.SubElement(root, "testsuite", {"name": runtime.name})
        props = ET.SubElement(suite, "properties")
        for key, value in (("run_id", m.run_id), ("baseline", m.baseline),
                           ("version", str(runtime.info.get("version") or "").split("\n")[0])):
            ET.SubElement(props, "property", {"name": key, "value": value})
        counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
        elapsed = 0.0
        for c in sorted((c for c in m.cells if c.runtime == runtime.name), key=lambda c: c.scenario):
            case, status = _testcase(m, c)
            suite.append(case)
            counts["tests"] += 1
            elapsed += float(case.get("time", "0"))
            if status == "failure":
                counts["failures"] += 1
            elif status == "error":
                counts["errors"] += 1
            elif status == "skipped":
                counts["skipped"] += 1
        for k, v in counts.items():
            suite.set(k, str(v))
            totals[k] += v
        suite.set("time", f"{elapsed:.2f}")
    for k, v in totals.items():
        root.set(k, str(v))
    ET.indent(root)
    return ET.ElementTree(root)


def to_string(m: Matrix) -> str:
    root = build(m).getroot()
    assert root is not None
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def write(m: Matrix, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(to_string(m))
