"""The release gate: a run must match the registry, both ways, and must not be worse than a previous run.

Failures: a cell worse than its expectation (regression), a cell better than it (unexpected pass: the
registry is stale), the same two for the documented-behaviour result of a baseline-unavailable cell, any
`error` cell (a suite bug hides the real outcome), and with a previous run, any cell that got worse since.
Warnings, failures under --strict: cells without an expectation, cells that changed to or from an unranked
outcome (e.g. runc's baseline became unavailable), and runtimes in the run without a result for a registered
scenario. Runtimes the registry lists but the run did not include are not judged.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from harness.diff import Change, diff
from harness.matrix import CellView, Matrix
from harness.outcomes import Outcome, Verdict
from harness.render import evidence


class Level(StrEnum):
    FAIL = "FAIL"
    WARN = "WARN"


@dataclass(frozen=True)
class Finding:
    level: Level
    kind: str
    scenario: str
    runtime: str
    expected: str | None
    observed: str
    reason: str | None = None
    link: str | None = None
    detail: str | None = None

    def message(self) -> str:
        text = (f"{self.level} {self.kind}: {self.scenario} under {self.runtime}: "
                f"expected {self.expected or 'nothing'}, observed {self.observed}")
        if self.reason:
            text += f"; registry: {self.reason}"
        if self.link:
            text += f" <{self.link}>"
        if self.detail:
            text += f"; {self.detail}"
        return text


_KINDS: dict[Verdict, tuple[Level, str]] = {
    Verdict.REGRESSION: (Level.FAIL, "regression"),
    Verdict.UNEXPECTED_PASS: (Level.FAIL, "unexpected pass"),
    Verdict.CHANGED: (Level.WARN, "changed"),
    Verdict.NO_EXPECTATION: (Level.WARN, "no expectation"),
    Verdict.UNEXPECTED_NOT_RUN: (Level.WARN, "no result"),
}


def _first_difference(m: Matrix, c: CellView) -> str | None:
    """The first evidence line that tells the target from the baseline, to make the message actionable."""
    if c.record is None:
        return c.note
    ev = evidence.build([(evidence.target_label(c.runtime, m.baseline), c.record)], m.baseline,
                        max_examples=100, max_agreed=0)
    for e in ev.examples:
        for line in e.lines:
            if not line.agreed:
                where = f" [{e.params}]" if e.params else ""
                return f"evidence{where}: {line.text()}"
    return c.note


def _link(m: Matrix, c: CellView) -> str | None:
    if c.expectation is not None and c.expectation.link:
        return c.expectation.link
    links = m.scenario(c.scenario).links
    return links[0] if links else None


def check(m: Matrix, previous: dict[str, Any] | None = None, *, strict: bool = False) -> list[Finding]:
    findings: list[Finding] = []
    for c in m.cells:
        if c.verdict is None or c.silent:
            continue
        if c.outcome == Outcome.ERROR:  # a suite bug fails even where someone "expected" it
            level, kind = Level.FAIL, "error"
        elif c.verdict == Verdict.EXPECTED:
            continue
        else:
            level, kind = _KINDS[c.verdict]
        if strict:
            level = Level.FAIL
        findings.append(Finding(level, kind, c.scenario, c.runtime,
                                c.expectation.outcome.value if c.expectation else None, c.outcome.value,
                                c.expectation.reason if c.expectation else None, _link(m, c),
                                _first_difference(m, c)))
    for c in m.cells:
        if c.documented_verdict is None or c.documented_verdict == Verdict.EXPECTED or c.silent:
            continue
        level, kind = _KINDS[c.documented_verdict]
        expected = c.expectation.documented if c.expectation else None
        findings.append(Finding(
            Level.FAIL if strict else level, f"documented {kind}", c.scenario, c.runtime,
            f"documented {expected}" if expected else None,
            f"documented {c.documented or 'unjudged'}", c.expectation.reason if c.expectation else None,
            _link(m, c), "failed checks: " + "; ".join(c.documented_failed) if c.documented_failed else None))
    for s in m.scenarios:  # a warning: each stack's cell is already judged against its expectation above
        for rt, seen in s.drift:
            per_stack = ", ".join(f"{o.value} on {stack}" for stack, o in seen)
            findings.append(Finding(Level.FAIL if strict else Level.WARN, "version drift", s.id, rt, None,
                                    per_stack, None, s.links[0] if s.links else None,
                                    "the outcome depends on the Docker stack"))
    if previous is not None:
        current = {"run_id": m.run_id, "cells": [c.record for c in m.cells if c.record is not None]}
        for ch in diff(previous, current):
            if ch.change == Change.REGRESSED or (strict and ch.change == Change.CHANGED):
                c = m.scenario(ch.scenario).cell(ch.runtime)
                findings.append(Finding(
                    Level.FAIL, f"{ch.change.value} since run {previous['run_id']}", ch.scenario, ch.runtime,
                    c.expectation.outcome.value if c.expectation else None, c.outcome.value,
                    c.expectation.reason if c.expectation else None, _link(m, c),
                    f"was {ch.before} in run {previous['run_id']}"))
    order = {Level.FAIL: 0, Level.WARN: 1}
    return sorted(findings, key=lambda f: (order[f.level], f.kind, f.scenario, f.runtime))


def failed(findings: list[Finding]) -> bool:
    return any(f.level == Level.FAIL for f in findings)


def report(findings: list[Finding]) -> str:
    fails = [f for f in findings if f.level == Level.FAIL]
    warns = [f for f in findings if f.level == Level.WARN]
    lines = [f.message() for f in findings if f.kind != "no result" or f.level == Level.FAIL]
    missing: dict[str, list[str]] = {}
    for f in findings:
        if f.kind == "no result" and f.level == Level.WARN:
            missing.setdefault(f.runtime, []).append(f.scenario)
    for runtime, scenarios in missing.items():
        lines.append(f"WARN no result: {len(scenarios)} registered scenario{'s' if len(scenarios) != 1 else ''} "
                     f"under {runtime}: {', '.join(scenarios)}")
    verdict = "FAILED" if fails else "passed"
    lines.append(f"gate {verdict}: {len(fails)} failure{'s' if len(fails) != 1 else ''}, "
                 f"{len(warns)} warning{'s' if len(warns) != 1 else ''}")
    return "\n".join(lines) + "\n"
