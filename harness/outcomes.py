"""The vocabulary of cell outcomes and verdicts (shared/DESIGN.md), in one place."""

from __future__ import annotations

from enum import StrEnum


class Outcome(StrEnum):
    SAME = "same"
    DIFFERS = "differs"
    REFUSED = "refused"
    HOST_IMPACT = "host-impact"
    BASELINE_UNAVAILABLE = "baseline-unavailable"
    NOT_RUN = "not-run"
    FLAKY = "flaky"
    ERROR = "error"


class Verdict(StrEnum):
    """How an observed outcome compares with the registry's expectation."""

    EXPECTED = "expected"
    REGRESSION = "regression"
    UNEXPECTED_PASS = "unexpected-pass"
    CHANGED = "changed"  # different but neither better nor worse (e.g. refused -> differs)
    UNEXPECTED_NOT_RUN = "not-run"
    NO_EXPECTATION = "no-expectation"


SYMBOLS: dict[Outcome, str] = {
    Outcome.SAME: "✅",
    Outcome.DIFFERS: "⚠️",
    Outcome.REFUSED: "❌",
    Outcome.HOST_IMPACT: "☢️",
    Outcome.BASELINE_UNAVAILABLE: "⛔",
    Outcome.NOT_RUN: "⏭️",
    Outcome.FLAKY: "🎲",
    Outcome.ERROR: "💥",
}

MEANINGS: dict[Outcome, str] = {
    Outcome.SAME: "succeeded, and the observed effect equals runc's",
    Outcome.DIFFERS: "accepted, but the observed effect differs from runc's",
    Outcome.REFUSED: "the operation failed under this runtime while runc succeeded",
    Outcome.HOST_IMPACT: "the scenario changed host state it must not touch",
    Outcome.BASELINE_UNAVAILABLE: "runc itself cannot do it on this host; the target's behaviour is shown as evidence",
    Outcome.NOT_RUN: "the runtime is not installed, or the scenario was not selected",
    Outcome.FLAKY: "repeated runs disagreed",
    Outcome.ERROR: "the suite itself failed (a bug in vmparity, never a result)",
}

RANK: dict[Outcome, int] = {
    Outcome.SAME: 0,
    Outcome.DIFFERS: 1,
    Outcome.FLAKY: 2,
    Outcome.REFUSED: 3,
    Outcome.HOST_IMPACT: 4,
}
"""How bad an outcome is for users of the runtime. not-run, error and baseline-unavailable are not ranked:
they say nothing about the target being better or worse."""


def verdict(observed: Outcome, expected: Outcome | None) -> Verdict:
    if expected is None:
        return Verdict.NO_EXPECTATION
    if observed == expected:
        return Verdict.EXPECTED
    if observed == Outcome.ERROR:
        return Verdict.REGRESSION
    if observed == Outcome.NOT_RUN:
        return Verdict.UNEXPECTED_NOT_RUN
    if observed not in RANK or expected not in RANK:
        return Verdict.CHANGED
    if RANK[observed] > RANK[expected]:
        return Verdict.REGRESSION
    if RANK[observed] < RANK[expected]:
        return Verdict.UNEXPECTED_PASS
    return Verdict.CHANGED
