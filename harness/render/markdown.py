"""docs/limitations.md: the registry's text and a run's observations, laid out with jinja2 and tabulate.

The output depends only on its inputs (no clock, fixed orders), so `render --check` can compare bytes.
"""

from __future__ import annotations

import re
from typing import Any

from tabulate import tabulate

from harness.matrix import CellView, Matrix, ScenarioView, is_baseline
from harness.outcomes import DOCUMENTED_MEANINGS, DOCUMENTED_SYMBOLS, SYMBOLS, Documented, Outcome, Verdict
from harness.render import cell_evidence, evidence, provenance
from harness.render.jinja import environment
from harness.render.words import (
    NOT_IN_RUN_WORD,
    VERDICT_MEANINGS,
    VERDICT_WORDS,
    cell_documented,
    documented_text,
    link_label,
    meaning,
    outcome_text,
    verdict_text,
)
from harness.summary import lines as summary_lines

TEMPLATE = "limitations.md.j2"
AA_QUIET = (Outcome.SAME, Outcome.BASELINE_UNAVAILABLE, Outcome.NOT_RUN)
"""A/A outcomes that add nothing to the evidence: the baseline column already shows what runc did."""


def cell(text: object) -> str:
    """Text safe inside a Markdown table cell."""
    return " ".join(str(text).split()).replace("|", "\\|")


def table(headers: list[str], rows: list[list[Any]]) -> str:
    return tabulate([[cell(v) for v in row] for row in rows], headers=[cell(h) for h in headers],
                    tablefmt="github", disable_numparse=True)


def link(url: str) -> str:
    return f"[{link_label(url)}]({url})"


def _matrix_cell(c: CellView) -> str:
    if c.in_run:
        if c.documented is not None:
            return f"{outcome_text(c.outcome)} · {documented_text(c.documented)}"
        return outcome_text(c.outcome)
    if c.expectation is None:
        return f"{SYMBOLS[Outcome.NOT_RUN]} not run"
    return f"{SYMBOLS[Outcome.NOT_RUN]} not run (expected {outcome_text(c.expectation.outcome)})"


def matrix_table(m: Matrix) -> str:
    headers = ["scenario", "section", "severity", *(r.label for r in m.runtimes)]
    rows = [[f"[{s.title}](#{s.anchor})", s.section, s.severity, *(_matrix_cell(c) for c in s.cells)]
            for s in m.scenarios]
    return table(headers, rows)


def _expected(c: CellView) -> str:
    if c.expectation is None:
        return "none"
    text = outcome_text(c.expectation.outcome)
    if c.expectation.documented is not None:
        text += f" · {documented_text(c.expectation.documented)}"
    return text


def _verdict(c: CellView) -> str:
    text = verdict_text(c)
    if c.documented_verdict is not None:
        text += f" · documented: {VERDICT_WORDS[c.documented_verdict]}"
    return text


def _reason(c: CellView) -> str:
    if c.expectation is None:
        return ""
    text = c.expectation.reason
    return f"{text} ({link(c.expectation.link)})" if c.expectation.link else text


def _observed(c: CellView) -> str:
    if not c.in_run:
        return NOT_IN_RUN_WORD
    note = f" ({c.note})" if c.note else ""
    documented = f"; {cell_documented(c)}" if c.documented is not None else ""
    return outcome_text(c.outcome) + note + documented


def outcomes_table(s: ScenarioView) -> str:
    rows = [[c.runtime, _observed(c), _expected(c), _verdict(c), _reason(c)]
            for c in s.cells if c.in_run or c.expectation is not None]
    return table(["runtime", "observed", "expected", "verdict", "why"], rows)


def disagreements_table(m: Matrix) -> str:
    rows = [[f"[{s.title}](#{s.anchor})", c.runtime, _expected(c), _observed(c), _verdict(c), _reason(c)]
            for s in m.scenarios for c in s.cells
            if not c.silent and (c.verdict not in (None, Verdict.EXPECTED, Verdict.UNEXPECTED_NOT_RUN)
                                 or c.documented_verdict not in (None, Verdict.EXPECTED))]
    if not rows:
        return ""
    return table(["scenario", "runtime", "expected", "observed", "verdict", "why"], rows)


def evidence_columns(m: Matrix, s: ScenarioView) -> list[tuple[str, dict[str, Any]]]:
    """Every target that ran, side by side; runc's A/A column only when it disagrees with itself."""
    cols = []
    for c in s.cells:
        if c.record is None:
            continue
        if is_baseline(c.runtime, m.baseline):
            if c.outcome not in AA_QUIET:
                cols.append((evidence.target_label(c.runtime, m.baseline), c.record))
            continue
        cols.append((c.runtime, c.record))
    return cols


def scenario_evidence(m: Matrix, s: ScenarioView) -> evidence.CellEvidence:
    cols = evidence_columns(m, s)
    if not cols:
        aa = [(c.runtime, c.record) for c in s.cells if c.record is not None and is_baseline(c.runtime, m.baseline)]
        cols = [(evidence.target_label(rt, m.baseline), rec) for rt, rec in aa]
    return evidence.build(cols, m.baseline)


def merge_notes(m: Matrix, s: ScenarioView) -> list[str]:
    notes = []
    for conflict in (m.provenance.get("merge") or {}).get("conflicts") or []:
        if conflict["scenario"] != s.id:
            continue
        seen = ", ".join(f"{o['outcome']} in run {o['run_id']}" for o in conflict["observed"])
        notes.append(f"Runs disagree for {conflict['runtime']} ({seen}); {conflict['kept']['outcome']} from run "
                     f"{conflict['kept']['run_id']} is shown.")
    return notes


def _alike(e: evidence.ExampleEvidence) -> str | None:
    """One line for an example every runtime observed identically, instead of a line per key."""
    if not e.lines or any(not line.agreed or line.special for line in e.lines):
        return None
    pairs = ", ".join(f"{evidence.code(line.key)} {evidence.code(line.values[0][1])}" for line in e.lines)
    more = f" and {e.hidden} more" if e.hidden else ""
    return f"alike everywhere: {pairs}{more}"


def _scenario_context(m: Matrix, s: ScenarioView, evidence_href: str | None) -> dict[str, Any]:
    ev = scenario_evidence(m, s)
    recorded = any(c.record for c in s.cells)
    return {
        "evidence_href": f"{evidence_href}{cell_evidence.relpath(s)}" if evidence_href and recorded else None,
        "anchor": s.anchor, "title": s.title, "id": s.id, "severity": s.severity, "summary": s.summary,
        "oracle": s.oracle, "workaround": s.workaround, "documented": list(s.documented),
        "unavailable_when": list(s.unavailable_when), "links": [link(u) for u in s.links],
        "registered": s.registered, "outcomes": outcomes_table(s),
        "notes": [*merge_notes(m, s), *(f"Version drift: {rt} is " + ", ".join(f"{o.value} on {st}" for st, o in seen)
                                        for rt, seen in s.drift)],
        "examples": [{"heading": e.heading(), "lines": [line.markdown() for line in e.lines], "hidden": e.hidden,
                      "alike": _alike(e)} for e in ev.examples],
        "single": len(ev.examples) == 1 and not ev.examples[0].params and ev.examples[0].attempt == 1,
        "omitted": ev.omitted,
    }


def provenance_tables(m: Matrix) -> list[dict[str, str]]:
    if not m.hosts:
        return [{"title": "", "table": table(["", ""], [list(r) for r in provenance.rows(m.run_id, m.provenance)])}]
    return [{"title": f"run {run_id}", "table": table(["", ""], [list(r) for r in provenance.rows(run_id, prov)])}
            for run_id, prov in m.hosts.items()]


def measured(m: Matrix) -> dict[str, Any]:
    """When and at which suite commit the document's observations were made, and why it is not one clean run."""
    suite = m.provenance.get("suite") or {}
    commits = suite.get("commits") or ([suite["commit"]] if suite.get("commit") else [])
    started = str(m.provenance.get("started") or "")
    return {"commits": [str(c)[:12] for c in commits], "date": started[:10], "started": started,
            "finished": m.provenance.get("finished"), "dirty": bool(suite.get("dirty")),
            "problems": list(m.provenance.get("reference_problems") or [])}


def stacks_observed(m: Matrix) -> list[str]:
    """One line per stack the document observed, leading stack first: its name and the daemon's components."""
    provs = list(m.hosts.values()) or [m.provenance]
    found = {}
    for p in provs:
        st = p.get("stack") or {}
        if st.get("name"):
            c = st.get("components") or {}
            words = {"docker": "Docker", "api": "API", "containerd": "containerd", "runc": "runc", "cgroup": "cgroup"}
            found[st["name"]] = f"`{st['name']}`: " + ", ".join(f"{w} {c[k]}" for k, w in words.items() if c.get(k))
    order = list(m.provenance.get("stack_order") or []) + sorted(found)
    return [found[n] for n in dict.fromkeys(order) if n in found]


def drift_table(m: Matrix) -> str:
    rows = [[f"[{s.title}](#{s.anchor})", rt, " · ".join(f"{stack}: {o.value}" for stack, o in seen)]
            for s in m.scenarios for rt, seen in s.drift]
    return table(["scenario", "runtime", "outcome per stack"], rows) if rows else ""


def context(m: Matrix, evidence_href: str | None = None) -> dict[str, Any]:
    runtimes = [[r.name, r.description, provenance.runtime_text(r.info) if r.in_run else NOT_IN_RUN_WORD]
                for r in m.runtimes]
    return {
        "title": m.title, "intro": m.intro, "source": m.source, "run_id": m.run_id, "baseline": m.baseline,
        "merged": bool(m.hosts),
        "legend": table(["", "outcome", "meaning"], [[SYMBOLS[o], o.value, meaning(o)] for o in Outcome]),
        "documented_legend": table(["", "documented", "meaning"],
                                   [[DOCUMENTED_SYMBOLS[d], d.value, DOCUMENTED_MEANINGS[d]] for d in Documented]),
        "verdicts": table(["verdict", "meaning"], [[VERDICT_WORDS[v], VERDICT_MEANINGS[v]] for v in Verdict]),
        "runtimes": table(["runtime", "what it is", "in this run"], runtimes),
        "matrix": matrix_table(m), "summary": summary_lines(m), "disagreements": disagreements_table(m),
        "missing": sum(1 for c in m.cells if c.verdict == Verdict.UNEXPECTED_NOT_RUN),
        "sections": [{"title": sec.title, "text": sec.text,
                      "areas": [{"title": a.title,
                                 "scenarios": [_scenario_context(m, s, evidence_href) for s in a.scenarios]}
                                for a in sec.areas]}
                     for sec in m.sections],
        "provenance": provenance_tables(m), "measured": measured(m),
        "stacks": stacks_observed(m), "drift": drift_table(m),
        "merge": m.provenance.get("merge"),
    }


def render(m: Matrix, evidence_href: str | None = None) -> str:
    """evidence_href: where the per-scenario evidence files are, relative to the document (None: no links)."""
    text = environment(autoescape=False).get_template(TEMPLATE).render(**context(m, evidence_href))
    text = "\n".join(line.rstrip() for line in text.splitlines())
    return re.sub(r"\n{3,}", "\n\n", text).strip("\n") + "\n"
