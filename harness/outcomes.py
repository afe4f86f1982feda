"""The vocabulary of cell outcomes and verdicts (docs/design.md), in one place."""

from __future__ import annotations

from enum import StrEnum


class Outcome(StrEnum):
    SAME = "same"
    DIFFERS = "differs"
    REFUSED = "refused"
    TIMED_OUT = "timed-out"
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
    Outcome.TIMED_OUT: "⌛",
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
    Outcome.TIMED_OUT: "a Docker operation or the whole scenario did not finish in time under this runtime (a hang)",
    Outcome.HOST_IMPACT: ("the scenario changed host state it must not touch, or left something behind (a process, "
                          "shim, VM, mount or sysctl); it outranks every other outcome"),
    Outcome.BASELINE_UNAVAILABLE: ("runc itself cannot do it on this host, for a reason the scenario declares; the "
                                   "target is judged against what Docker documents instead"),
    Outcome.NOT_RUN: "the runtime is not installed, or the scenario was not selected",
    Outcome.FLAKY: "repeated runs disagreed",
    Outcome.ERROR: "the suite itself failed (a bug in vmparity, never a result)",
}

RANK: dict[Outcome, int] = {
    Outcome.SAME: 0,
    Outcome.DIFFERS: 1,
    Outcome.FLAKY: 2,
    Outcome.REFUSED: 3,
    Outcome.TIMED_OUT: 4,
    Outcome.HOST_IMPACT: 5,
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


class Documented(StrEnum):
    """The second result of a cell whose baseline is unavailable: did the target do what Docker documents?"""

    MEETS = "meets"
    FAILS = "fails"
    UNJUDGED = "unjudged"


DOCUMENTED_SYMBOLS: dict[Documented, str] = {
    Documented.MEETS: "✔️",
    Documented.FAILS: "✖️",
    Documented.UNJUDGED: "❔",
}

DOCUMENTED_MEANINGS: dict[Documented, str] = {
    Documented.MEETS: "the target did what Docker documents for this scenario",
    Documented.FAILS: "the target did not do what Docker documents (a check failed, or it refused or hung)",
    Documented.UNJUDGED: "no verdict: the suite failed, or the scenario states no documented effect",
}


def documented_verdict(observed: Documented, expected: Documented | None) -> Verdict:
    """The same both-ways judgement as outcomes, on the documented-behaviour result."""
    if expected is None:
        return Verdict.NO_EXPECTATION
    if observed == expected:
        return Verdict.EXPECTED
    if observed == Documented.UNJUDGED:
        return Verdict.REGRESSION
    return Verdict.REGRESSION if observed == Documented.FAILS else Verdict.UNEXPECTED_PASS
