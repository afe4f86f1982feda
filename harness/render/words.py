"""The few words and labels every render shares, so Markdown, HTML, JUnit and the gate say the same thing."""

from __future__ import annotations

from urllib.parse import urlparse

from harness.matrix import CellView
from harness.outcomes import DOCUMENTED_SYMBOLS, MEANINGS, SYMBOLS, Documented, Outcome, Verdict

VERDICT_WORDS: dict[Verdict, str] = {
    Verdict.EXPECTED: "expected",
    Verdict.REGRESSION: "regression",
    Verdict.UNEXPECTED_PASS: "unexpected pass",
    Verdict.CHANGED: "changed",
    Verdict.UNEXPECTED_NOT_RUN: "no result",
    Verdict.NO_EXPECTATION: "no expectation",
}

VERDICT_MEANINGS: dict[Verdict, str] = {
    Verdict.EXPECTED: "observed what the registry expects",
    Verdict.REGRESSION: "worse than the registry expects, or the suite failed: the gate fails",
    Verdict.UNEXPECTED_PASS: "better than the registry expects: a limitation went away, so the registry must "
                             "be updated; the gate fails until it is",
    Verdict.CHANGED: "different from the expectation but neither better nor worse (e.g. runc's baseline "
                     "became unavailable)",
    Verdict.UNEXPECTED_NOT_RUN: "the runtime was in the run but this cell has no result",
    Verdict.NO_EXPECTATION: "the registry states no expectation for this runtime",
}

NOT_IN_RUN_WORD = "not in this run"


def outcome_text(outcome: Outcome | str) -> str:
    o = Outcome(outcome)
    return f"{SYMBOLS[o]} {o}"


def meaning(outcome: Outcome | str) -> str:
    return MEANINGS[Outcome(outcome)]


def verdict_text(cell: CellView) -> str:
    if cell.verdict is None:
        return NOT_IN_RUN_WORD
    return VERDICT_WORDS[cell.verdict]


def documented_text(documented: Documented | str) -> str:
    d = Documented(documented)
    return f"{DOCUMENTED_SYMBOLS[d]} documented: {d}"


def cell_documented(cell: CellView) -> str:
    """The second result of a baseline-unavailable cell, with the checks that failed."""
    if cell.documented is None:
        return ""
    text = documented_text(cell.documented)
    if cell.documented_failed:
        text += " (" + "; ".join(cell.documented_failed) + ")"
    return text


def link_label(url: str) -> str:
    """`kata-containers/runtime#184` for GitHub issues and pulls; host and path otherwise."""
    parsed = urlparse(url)
    parts = [p for p in parsed.path.split("/") if p]
    if parsed.netloc == "github.com" and len(parts) >= 4 and parts[2] in ("issues", "pull"):
        return f"{parts[0]}/{parts[1]}#{parts[3]}"
    if parsed.netloc == "github.com" and len(parts) >= 2:
        return "/".join(parts[:2])
    return (parsed.netloc + parsed.path).rstrip("/") or url


def first_line(text: object) -> str:
    lines = str(text or "").strip().splitlines()
    return lines[0].strip() if lines else ""
