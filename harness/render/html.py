"""reports/matrix.html: the matrix as one self-contained page (inline CSS and JS, no network).

Each cell carries its outcome as a class (the colour) and a short tooltip; clicking it opens the evidence
(the target's observations next to the baseline's) from a JSON island in the page. Filters by runtime and by
section hide columns and rows, and are mirrored in the URL fragment (`#runtimes=runc,runvm&sections=pending`)
so a filtered view can be linked, and tested without a browser driver.
"""

from __future__ import annotations

import json
from typing import Any

from markupsafe import Markup

from harness.matrix import CellView, Matrix, ScenarioView
from harness.outcomes import SYMBOLS, Outcome, Verdict
from harness.render import evidence, provenance
from harness.render.jinja import environment
from harness.render.words import (
    NOT_IN_RUN_WORD,
    VERDICT_MEANINGS,
    VERDICT_WORDS,
    link_label,
    meaning,
    verdict_text,
)
from harness.summary import lines as summary_lines

TEMPLATE = "matrix.html.j2"
TOOLTIP_LINES = 3

COLOURS: dict[Outcome, tuple[str, str]] = {
    Outcome.SAME: ("#a5d6a7", "#102a12"),
    Outcome.DIFFERS: ("#ffd54f", "#3b2f00"),
    Outcome.REFUSED: ("#e57373", "#2b0505"),
    Outcome.HOST_IMPACT: ("#ba68c8", "#1e0524"),
    Outcome.BASELINE_UNAVAILABLE: ("#90a4ae", "#0f1a1f"),
    Outcome.NOT_RUN: ("#e0e0e0", "#424242"),
    Outcome.FLAKY: ("#ffb74d", "#3a2200"),
    Outcome.ERROR: ("#37474f", "#ffffff"),
}
"""Background and text colour per outcome; the Chromium test looks for these backgrounds in a screenshot."""


def cell_key(c: CellView) -> str:
    return f"{c.scenario}@{c.runtime}"


def _pair_evidence(m: Matrix, c: CellView) -> evidence.CellEvidence | None:
    if c.record is None:
        return None
    return evidence.build([(evidence.target_label(c.runtime, m.baseline), c.record)], m.baseline,
                          max_examples=8, max_agreed=12)


def _detail(m: Matrix, s: ScenarioView, c: CellView) -> dict[str, Any]:
    ev = _pair_evidence(m, c)
    exp = c.expectation
    return {
        "scenario": s.id, "title": s.title, "runtime": c.runtime, "severity": s.severity,
        "outcome": c.outcome.value, "symbol": SYMBOLS[c.outcome], "meaning": meaning(c.outcome),
        "in_run": c.in_run, "note": c.note,
        "expected": exp.outcome.value if exp else None, "reason": exp.reason if exp else None,
        "link": exp.link if exp else None, "verdict": verdict_text(c),
        "summary": s.summary, "workaround": s.workaround,
        "links": [{"href": u, "label": link_label(u)} for u in s.links],
        "examples": [{"heading": e.heading(), "lines": [line.text() for line in e.lines], "hidden": e.hidden}
                     for e in ev.examples] if ev else [],
        "omitted": ev.omitted if ev else 0,
        "duration_s": c.record.get("duration_s") if c.record else None,
        "evidence_dir": (c.record.get("evidence") or {}).get("dir") if c.record else None,
        "run_id": c.record.get("run_id") if c.record else None,
    }


def _tooltip(m: Matrix, c: CellView, detail: dict[str, Any]) -> str:
    head = f"{c.runtime}: {c.outcome.value}" if c.in_run else f"{c.runtime}: {NOT_IN_RUN_WORD}"
    if c.expectation is not None:
        head += f" (expected {c.expectation.outcome.value}: {c.expectation.reason})"
    lines = [head]
    if c.verdict is not None and c.verdict != Verdict.EXPECTED:
        lines.append(verdict_text(c))
    for e in detail["examples"][:1]:
        lines += e["lines"][:TOOLTIP_LINES]
    return "\n".join(lines)


def _verdict_class(c: CellView) -> str:
    if c.verdict is None:
        return "absent"
    if c.silent:
        return "v-none"
    return "v-" + c.verdict.value


def embed_json(data: Any) -> Markup:
    """JSON that cannot close its <script> element or open a comment, whatever the evidence text holds."""
    text = json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return Markup(text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026"))


def context(m: Matrix) -> dict[str, Any]:
    details: dict[str, Any] = {}
    rows = []
    for s in m.scenarios:
        cells = []
        for c in s.cells:
            d = _detail(m, s, c)
            details[cell_key(c)] = d
            cells.append({"key": cell_key(c), "runtime": c.runtime, "outcome": c.outcome.value,
                          "symbol": SYMBOLS[c.outcome], "classes": f"o-{c.outcome.value} {_verdict_class(c)}",
                          "verdict": verdict_text(c), "word": c.outcome.value if c.in_run else "not run",
                          "tooltip": _tooltip(m, c, d)})
        rows.append({"id": s.id, "anchor": s.anchor, "title": s.title, "section": s.section,
                     "severity": s.severity, "cells": cells})
    return {
        "title": m.title, "run_id": m.run_id, "baseline": m.baseline,
        "runtimes": [{"name": r.name, "label": r.label, "in_run": r.in_run, "description": r.description}
                     for r in m.runtimes],
        "sections": [{"key": sec.key, "title": sec.title} for sec in m.sections],
        "legend": [{"outcome": o.value, "symbol": SYMBOLS[o], "meaning": meaning(o)} for o in Outcome],
        "verdicts": [{"word": VERDICT_WORDS[v], "meaning": VERDICT_MEANINGS[v], "cls": "v-" + v.value}
                     for v in (Verdict.REGRESSION, Verdict.UNEXPECTED_PASS)],
        "colours": [{"outcome": o.value, "bg": bg, "fg": fg} for o, (bg, fg) in COLOURS.items()],
        "rows": rows, "summary": summary_lines(m),
        "provenance": ([{"title": "", "rows": provenance.rows(m.run_id, m.provenance)}] if not m.hosts else
                       [{"title": f"run {rid}", "rows": provenance.rows(rid, p)} for rid, p in m.hosts.items()]),
        "details": embed_json(details),
    }


def render(m: Matrix) -> str:
    return environment(autoescape=True).get_template(TEMPLATE).render(**context(m))
