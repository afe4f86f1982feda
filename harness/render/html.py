"""reports/matrix.html: the matrix as one self-contained page (inline CSS and JS, no network).

Each cell carries its outcome as a class (the colour), an inline SVG icon (BADGES: no emoji, which a browser
without an emoji font draws as empty boxes) and a short tooltip; clicking it opens the evidence
(the target's observations next to the baseline's) from a JSON island in the page. Filters by runtime and by
section hide columns and rows, and are mirrored in the URL fragment (`#runtimes=runc,runvm&sections=pending`)
so a filtered view can be linked, and tested without a browser driver.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from markupsafe import Markup

from harness.matrix import CellView, Matrix, ScenarioView, base_runtime
from harness.outcomes import DOCUMENTED_MEANINGS, Documented, Outcome, Verdict
from harness.render import cell_evidence, evidence, provenance
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

@dataclass(frozen=True)
class Badge:
    """How one outcome (or documented result) looks in the page: its colours and an icon drawn as inline SVG.

    The Markdown shows SYMBOLS' emoji; the page does not, because a browser without an emoji font (the headless
    Chromium of scripts/setup-host) draws them as empty boxes. The icons are shapes in a 16x16 viewBox painted
    with `currentColor`, defined once in the page and used by reference, so they depend on no font at all.
    """

    bg: str
    fg: str
    icon: Markup
    """SVG elements (no <svg> of their own) in a 16x16 viewBox."""


_FILL = 'fill="currentColor"'
_LINE = 'fill="none" stroke="currentColor" stroke-linecap="round" stroke-linejoin="round"'
_RING = f'<circle cx="8" cy="8" r="6.6" {_LINE} stroke-width="1.5"/>'

BADGES: dict[str, Badge] = {
    "same": Badge("#a5d6a7", "#102a12", Markup(  # a tick
        f'<path d="M2.6 8.6 6.3 12.1 13.4 4.2" {_LINE} stroke-width="2.4"/>')),
    "differs": Badge("#ffd54f", "#3b2f00", Markup(  # a warning triangle with its "!" cut out
        f'<path fill-rule="evenodd" {_FILL} d="M8 1.2 15.3 14.4H.7Z M7 5.6h2l-.35 4.7h-1.3Z M7 11.5h2v1.8H7Z"/>')),
    "refused": Badge("#e57373", "#2b0505", Markup(  # a cross
        f'<path d="M3.6 3.6 12.4 12.4M12.4 3.6 3.6 12.4" {_LINE} stroke-width="2.6"/>')),
    "timed-out": Badge("#80deea", "#00262b", Markup(  # an hourglass
        f'<path d="M3.4 1.6h9.2M3.4 14.4h9.2" {_LINE} stroke-width="1.6"/>'
        f'<path d="M4.6 2v1.6C4.6 5.8 8 6.6 8 8s-3.4 2.2-3.4 4.4V14M11.4 2v1.6C11.4 5.8 8 6.6 8 8s3.4 2.2 3.4 '
        f'4.4V14" {_LINE} stroke-width="1.3"/>'
        f'<path {_FILL} d="M6 4.3h4L8 6.5Z M5.4 13.6 8 10.6 10.6 13.6Z"/>')),
    "host-impact": Badge("#ba68c8", "#1e0524", Markup(  # a radiation trefoil
        f'<circle cx="8" cy="8" r="1.7" {_FILL}/>'
        f'<path {_FILL} d="M6.65 5.66 4.35 1.68A7.3 7.3 0 0 1 11.65 1.68L9.35 5.66A2.7 2.7 0 0 0 6.65 5.66Z'
        'M10.7 8H15.3A7.3 7.3 0 0 1 11.65 14.32L9.35 10.34A2.7 2.7 0 0 0 10.7 8Z'
        'M6.65 10.34 4.35 14.32A7.3 7.3 0 0 1 .7 8H5.3A2.7 2.7 0 0 0 6.65 10.34Z"/>')),
    "baseline-unavailable": Badge("#90a4ae", "#0f1a1f", Markup(  # a no-entry sign
        f'<path fill-rule="evenodd" {_FILL} d="M8 .9a7.1 7.1 0 1 0 0 14.2A7.1 7.1 0 1 0 8 .9Z M3.4 6.7h9.2v2.6H3.4Z"/>'
    )),
    "not-run": Badge("#e0e0e0", "#424242", Markup(  # skip: two triangles and a bar
        f'<path {_FILL} d="M1.2 3.2v9.6L7 8Z M7 3.2v9.6L12.8 8Z M13 3.2h1.8v9.6H13Z"/>')),
    "flaky": Badge("#ffb74d", "#3a2200", Markup(  # a die showing three
        f'<rect x="1.6" y="1.6" width="12.8" height="12.8" rx="2.6" {_LINE} stroke-width="1.5"/>'
        f'<circle cx="5" cy="5" r="1.45" {_FILL}/><circle cx="8" cy="8" r="1.45" {_FILL}/>'
        f'<circle cx="11" cy="11" r="1.45" {_FILL}/>')),
    "error": Badge("#37474f", "#ffffff", Markup(  # a burst
        f'<path {_FILL} d="M8 .4 9.3 4.86 13.37 2.63 11.14 6.7 15.6 8 11.14 9.3 13.37 13.37 9.3 11.14 8 15.6 '
        '6.7 11.14 2.63 13.37 4.86 9.3.4 8 4.86 6.7 2.63 2.63 6.7 4.86Z"/>')),
}
"""Every Outcome's badge, keyed by its value (an Outcome looks itself up: it is a str), so the page renders
whichever outcomes harness.outcomes defines; a unit test holds the mapping complete, and the Chromium test looks
for these colours and icons in a screenshot."""

DOCUMENTED_BADGES: dict[str, Badge] = {
    "meets": Badge("#e8f5e9", "#1b5e20", Markup(
        _RING + f'<path d="M4.8 8.3 7.1 10.6 11.3 5.6" {_LINE} stroke-width="1.9"/>')),
    "fails": Badge("#ffebee", "#b71c1c", Markup(
        _RING + f'<path d="M5.4 5.4 10.6 10.6M10.6 5.4 5.4 10.6" {_LINE} stroke-width="1.9"/>')),
    "unjudged": Badge("#eceff1", "#37474f", Markup(
        _RING + f'<path d="M6.1 6.3A1.95 1.95 0 1 1 8.9 8c-.6.35-.9.75-.9 1.4" {_LINE} stroke-width="1.6"/>'
        f'<circle cx="8" cy="11.7" r=".95" {_FILL}/>')),
}
"""The second result of a baseline-unavailable cell (harness.outcomes.Documented, keyed by value), as a lighter,
outlined badge: `.badge.d-meets` and the icon `#i-d-meets` are in every page, ready for cells that carry one."""

UNKNOWN = Badge("#ffffff", "#1b1f24", Markup(
    _RING + f'<path d="M6.1 6.3A1.95 1.95 0 1 1 8.9 8c-.6.35-.9.75-.9 1.4" {_LINE} stroke-width="1.6"/>'
    f'<circle cx="8" cy="11.7" r=".95" {_FILL}/>'))
"""For a value added to Outcome before it has a badge here: the page still renders, with its word."""


def badge(outcome: str) -> Badge:
    """An outcome's badge (an Outcome or its value)."""
    return BADGES.get(outcome, UNKNOWN)


def documented_badge(result: str) -> Badge:
    """A documented result's badge (a harness.outcomes.Documented or its value)."""
    return DOCUMENTED_BADGES.get(result, UNKNOWN)


def badge_class(outcome: Outcome) -> str:
    """The CSS class (colours) of an outcome's badge, also the suffix of its icon's id (`#i-o-same`)."""
    return "o-" + outcome.value


def documented_class(result: str) -> str:
    """The class and icon suffix of a documented result's badge (`d-meets`), for the cells that will carry one."""
    return "d-" + str(result)


def _styles() -> list[dict[str, Any]]:
    rows = [(badge_class(o), badge(o), False) for o in Outcome]
    rows += [(documented_class(d), documented_badge(d), True) for d in DOCUMENTED_BADGES]
    return [{"cls": cls, "bg": b.bg, "fg": b.fg, "icon": b.icon, "outline": outline} for cls, b, outline in rows]


def cell_key(c: CellView) -> str:
    return f"{c.scenario}@{c.runtime}"


def _pair_evidence(m: Matrix, c: CellView) -> evidence.CellEvidence | None:
    if c.record is None:
        return None
    return evidence.build([(evidence.target_label(c.runtime, m.baseline), c.record)], m.baseline,
                          max_examples=8, max_agreed=12)


def _detail(m: Matrix, s: ScenarioView, c: CellView, evidence_href: str | None = None) -> dict[str, Any]:
    ev = _pair_evidence(m, c)
    exp = c.expectation
    return {
        "scenario": s.id, "title": s.title, "runtime": c.runtime, "severity": s.severity,
        "outcome": c.outcome.value, "cls": badge_class(c.outcome), "meaning": meaning(c.outcome),
        "in_run": c.in_run, "note": c.note,
        "expected": exp.outcome.value if exp else None, "reason": exp.reason if exp else None,
        "link": exp.link if exp else None, "verdict": verdict_text(c),
        "documented": c.documented.value if c.documented else None,
        "documented_failed": list(c.documented_failed),
        "documented_expected": exp.documented.value if exp and exp.documented else None,
        "documented_verdict": VERDICT_WORDS[c.documented_verdict] if c.documented_verdict else None,
        "summary": s.summary, "workaround": s.workaround,
        "links": [{"href": u, "label": link_label(u)} for u in s.links],
        "examples": [{"heading": e.heading(), "lines": [line.text() for line in e.lines], "hidden": e.hidden}
                     for e in ev.examples] if ev else [],
        "omitted": ev.omitted if ev else 0,
        "duration_s": c.record.get("duration_s") if c.record else None,
        "evidence_dir": (c.record.get("evidence") or {}).get("dir") if c.record and not evidence_href else None,
        "evidence_file": f"{evidence_href}{cell_evidence.relpath(s)}" if evidence_href and c.record else None,
        "run_id": c.record.get("run_id") if c.record else None,
    }


def _tooltip(m: Matrix, c: CellView, detail: dict[str, Any]) -> str:
    head = f"{c.runtime}: {c.outcome.value}" if c.in_run else f"{c.runtime}: {NOT_IN_RUN_WORD}"
    if c.expectation is not None:
        head += f" (expected {c.expectation.outcome.value}: {c.expectation.reason})"
    lines = [head]
    if c.verdict is not None and c.verdict != Verdict.EXPECTED:
        lines.append(verdict_text(c))
    for rt, seen in m.scenario(c.scenario).drift:
        if rt == base_runtime(c.runtime):
            lines.append("version drift: " + ", ".join(f"{o.value} on {stack}" for stack, o in seen))
    if c.documented is not None:
        lines.append(f"documented: {c.documented.value}"
                     + (f" (failed: {'; '.join(c.documented_failed)})" if c.documented_failed else ""))
    for e in detail["examples"][:1]:
        lines += e["lines"][:TOOLTIP_LINES]
    return "\n".join(lines)


def _verdict_class(c: CellView) -> str:
    if c.verdict is None:
        return "absent"
    if c.silent:
        return "v-none"
    if c.verdict == Verdict.EXPECTED and c.documented_verdict not in (None, Verdict.EXPECTED):
        return "v-" + c.documented_verdict.value  # type: ignore[union-attr]
    return "v-" + c.verdict.value


def embed_json(data: Any) -> Markup:
    """JSON that cannot close its <script> element or open a comment, whatever the evidence text holds."""
    text = json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return Markup(text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026"))


def context(m: Matrix, evidence_href: str | None = None) -> dict[str, Any]:
    details: dict[str, Any] = {}
    rows = []
    for s in m.scenarios:
        cells = []
        for c in s.cells:
            d = _detail(m, s, c, evidence_href)
            details[cell_key(c)] = d
            cells.append({"key": cell_key(c), "runtime": c.runtime, "outcome": c.outcome.value,
                          "cls": badge_class(c.outcome), "classes": f"{badge_class(c.outcome)} {_verdict_class(c)}",
                          "verdict": verdict_text(c), "word": c.outcome.value if c.in_run else "not run",
                          "documented": c.documented.value if c.documented else None,
                          "dcls": documented_class(c.documented.value) if c.documented else None,
                          "tooltip": _tooltip(m, c, d)})
        rows.append({"id": s.id, "anchor": s.anchor, "title": s.title, "section": s.section,
                     "severity": s.severity, "cells": cells})
    return {
        "title": m.title, "run_id": m.run_id, "baseline": m.baseline,
        "runtimes": [{"name": r.name, "label": r.label, "in_run": r.in_run, "description": r.description}
                     for r in m.runtimes],
        "sections": [{"key": sec.key, "title": sec.title} for sec in m.sections],
        "legend": [{"outcome": o.value, "cls": badge_class(o), "meaning": meaning(o)} for o in Outcome],
        "documented_legend": [{"word": d.value, "cls": documented_class(d.value), "meaning": DOCUMENTED_MEANINGS[d]}
                              for d in Documented],
        "verdicts": [{"word": VERDICT_WORDS[v], "meaning": VERDICT_MEANINGS[v], "cls": "v-" + v.value}
                     for v in (Verdict.REGRESSION, Verdict.UNEXPECTED_PASS)],
        "badges": _styles(),
        "rows": rows, "summary": summary_lines(m),
        "provenance": ([{"title": "", "rows": provenance.rows(m.run_id, m.provenance)}] if not m.hosts else
                       [{"title": f"run {rid}", "rows": provenance.rows(rid, p)} for rid, p in m.hosts.items()]),
        "details": embed_json(details),
    }


def render(m: Matrix, evidence_href: str | None = None) -> str:
    """evidence_href: where the per-scenario evidence files are, relative to the page (None: the run's dirs)."""
    return environment(autoescape=True).get_template(TEMPLATE).render(**context(m, evidence_href))
