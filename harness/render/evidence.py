"""Evidence strings: what each runtime observed, key by key, side by side with the baseline.

An observation is a nested JSON object. It is flattened to dotted keys (`connected.interfaces`), and for each
key one line shows every runtime's value: `size_mib: runc 128 · runvm 128 · runsc 64`, or
`size_mib: 128 (all)` when everyone agrees. Examples (parameter sets, attempts) are matched across runtimes by
their parameters, so drawn values line up. Refusals, suite errors and host changes get lines of their own,
with long texts shortened in the middle so both the command and the innermost cause stay readable.
Lines that differ come first; agreeing keys are capped so a large observation does not drown the difference.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from harness.classify import canonical

MISSING = "—"
SEP = " · "
REFUSAL = "refused"
ERROR = "suite error"
HOST = "host changes"

_BOILERPLATE = ("docker: ", "Error response from daemon: ", "failed to create shim task: ",
                "failed to create shim: ", "OCI runtime create failed: ", "OCI runtime start failed: ")


def target_label(runtime: str, baseline: str) -> str:
    """A target's column label: the baseline run against itself is its A/A column."""
    base, sep, stack = runtime.partition("@")
    return f"{base} A/A{sep}{stack}" if base == baseline else runtime


def shorten(text: str, limit: int = 160) -> str:
    """One line of at most `limit` characters: Docker's repeated prefixes dropped, the middle elided."""
    s = " ".join(str(text).split())
    for prefix in _BOILERPLATE:
        s = s.replace(prefix, "")
    if len(s) <= limit:
        return s
    head = limit // 3
    tail = limit - head - 3
    return f"{s[:head].rstrip()} … {s[-tail:].lstrip()}"


def value_text(value: Any, limit: int = 60) -> str:
    """A JSON value as a short token: numbers and booleans as JSON, strings bare, containers compact."""
    if isinstance(value, str):
        return shorten(value, limit) if value.strip() else json.dumps(value)
    return shorten(json.dumps(value, sort_keys=True, separators=(",", ":"), default=str), limit)


def flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    """Nested objects become dotted keys; lists and scalars are leaves (a list is one value)."""
    if isinstance(obj, dict) and obj:
        flat: dict[str, Any] = {}
        for k in sorted(obj, key=str):
            flat.update(flatten(obj[k], f"{prefix}.{k}" if prefix else str(k)))
        return flat
    return {prefix or "value": obj}


def last_line(text: str) -> str:
    lines = [line for line in str(text).splitlines() if line.strip()]
    return lines[-1] if lines else str(text)


@dataclass(frozen=True)
class Line:
    key: str
    values: tuple[tuple[str, str], ...]
    """(runtime label, value) in column order; only the columns that ran this example."""
    special: bool = False
    """A refusal, error or host-change line rather than an observation key."""

    @property
    def agreed(self) -> bool:
        return len(self.values) > 1 and len({v for _, v in self.values}) == 1

    def text(self) -> str:
        if self.agreed:
            return f"{self.key}: {self.values[0][1]} (all)"
        return f"{self.key}: " + SEP.join(f"{label} {value}" for label, value in self.values)

    def markdown(self) -> str:
        if self.agreed:
            return f"{code(self.key)}: {code(self.values[0][1])} (all)"
        return f"{code(self.key)}: " + SEP.join(f"{label} {code(value)}" for label, value in self.values)


@dataclass(frozen=True)
class ExampleEvidence:
    params: str
    """`mib=128`, or empty for a scenario without parameters."""
    attempt: int
    outcomes: tuple[tuple[str, str], ...]
    """(target label, this example's outcome) for each column that ran it."""
    lines: tuple[Line, ...]
    hidden: int
    """Agreeing keys left out to keep the evidence short."""

    @property
    def interesting(self) -> bool:
        return any(o != "same" for _, o in self.outcomes) or any(not line.agreed for line in self.lines)

    def heading(self) -> str:
        parts = [self.params or "no parameters"]
        if self.attempt > 1:
            parts.append(f"attempt {self.attempt}")
        if self.outcomes:
            parts.append(", ".join(f"{label} {o}" for label, o in self.outcomes))
        return " · ".join(parts)


@dataclass(frozen=True)
class CellEvidence:
    examples: tuple[ExampleEvidence, ...]
    omitted: int
    """Examples left out (all agreeing ones beyond the cap)."""


def code(text: str) -> str:
    """A Markdown code span that survives backticks inside the text."""
    longest = run = 0
    for ch in text:
        run = run + 1 if ch == "`" else 0
        longest = max(longest, run)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def params_text(params: Any) -> str:
    if params in ({}, None, []):
        return ""
    if isinstance(params, dict):
        return ", ".join(f"{k}={value_text(v, 40)}" for k, v in flatten(params).items())
    return value_text(params, 80)


def _special_lines(columns: Sequence[tuple[str, dict[str, Any]]]) -> list[Line]:
    lines = []
    if any(o.get("refusal") for _, o in columns):
        lines.append(Line(REFUSAL, tuple((lbl, shorten(o["refusal"]) if o.get("refusal") else MISSING)
                                         for lbl, o in columns), special=True))
    if any(o.get("error") for _, o in columns):
        lines.append(Line(ERROR, tuple((lbl, shorten(last_line(o["error"]), 120) if o.get("error") else MISSING)
                                       for lbl, o in columns), special=True))
    if any(o.get("host_changes") for _, o in columns):
        base = set(columns[0][1].get("host_changes") or ())
        values = []
        for i, (lbl, o) in enumerate(columns):
            changes = list(o.get("host_changes") or ())
            new = changes if i == 0 else [c for c in changes if c not in base]
            if not new:
                values.append((lbl, "none" if i == 0 or not changes else "none new"))
            else:
                values.append((lbl, f"{len(new)}{'' if i == 0 else ' new'}, e.g. {shorten(new[0], 80)}"))
        lines.append(Line(HOST, tuple(values), special=True))
    return lines


def example_lines(columns: Sequence[tuple[str, dict[str, Any]]], max_agreed: int) -> tuple[list[Line], int]:
    """Lines for one example; columns are (label, observed) with the baseline first."""
    lines = _special_lines(columns)
    flats = [(lbl, flatten(o["observation"]) if isinstance(o.get("observation"), dict) else None)
             for lbl, o in columns]
    keys = sorted({k for _, f in flats if f for k in f})
    differing: list[Line] = []
    agreed: list[Line] = []
    for key in keys:
        values = tuple((lbl, value_text(f[key]) if f is not None and key in f else MISSING) for lbl, f in flats)
        line = Line(key, values)
        (agreed if line.agreed else differing).append(line)
    room = max(0, max_agreed - len(differing)) if differing else max_agreed
    return [*lines, *differing, *agreed[:room]], max(0, len(agreed) - room)


def build(columns: Sequence[tuple[str, dict[str, Any]]], baseline_label: str, *, max_examples: int = 4,
          max_agreed: int = 6) -> CellEvidence:
    """Evidence across cells: columns are (label, results.json cell) in display order.

    The baseline's observation comes from the first cell that ran each example: every cell of a run shares
    the baseline's cached observation for the same parameters. A cell whose baseline saw something else (it
    came from another host's run, in a merged document) gets its own baseline column next to it.
    """
    order: list[tuple[str, int]] = []
    params_of: dict[tuple[str, int], Any] = {}
    base: dict[tuple[str, int], dict[str, Any]] = {}
    per_column: list[tuple[str, dict[tuple[str, int], dict[str, Any]]]] = []
    for label, cell in columns:
        mine: dict[tuple[str, int], dict[str, Any]] = {}
        for ex in cell.get("examples") or ():
            key = (canonical(ex.get("params")), int(ex.get("attempt") or 1))
            if key not in params_of:
                order.append(key)
                params_of[key] = ex.get("params")
                base[key] = ex["baseline"]
            mine[key] = ex
        per_column.append((label, mine))

    examples = []
    for key in order:
        ran = [(label, mine[key]) for label, mine in per_column if key in mine]
        observed = [(baseline_label, base[key])]
        for label, ex in ran:
            if canonical(ex["baseline"]) != canonical(base[key]):  # cells from another run (merged documents)
                observed.append((f"{baseline_label} for {label}", ex["baseline"]))
            observed.append((label, ex["target"]))
        lines, hidden = example_lines(observed, max_agreed)
        examples.append(ExampleEvidence(params_text(params_of[key]), key[1],
                                        tuple((label, str(ex["outcome"])) for label, ex in ran),
                                        tuple(lines), hidden))

    if len(examples) <= max_examples:
        return CellEvidence(tuple(examples), 0)
    chosen = {i for i, e in enumerate(examples) if e.interesting}
    chosen = set(sorted(chosen)[:max_examples])
    for i in range(len(examples)):
        if len(chosen) >= max_examples:
            break
        chosen.add(i)
    kept = tuple(e for i, e in enumerate(examples) if i in chosen)
    return CellEvidence(kept, len(examples) - len(kept))
