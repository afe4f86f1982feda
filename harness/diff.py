"""What changed between two runs, cell by cell, ranked by how bad an outcome is for the runtime's users.

Ranked outcomes (harness/outcomes.RANK) compare directly. `error` is a suite failure: turning into one is a
regression and leaving it an improvement, as the gate sees it. Moves to or from an unranked outcome
(`not-run`, `baseline-unavailable`) say nothing about the runtime and are `changed`.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

from harness.outcomes import RANK, Outcome


class Change(StrEnum):
    REGRESSED = "regressed"
    IMPROVED = "improved"
    CHANGED = "changed"
    ADDED = "added"
    REMOVED = "removed"
    UNCHANGED = "unchanged"


ORDER = tuple(Change)


@dataclass(frozen=True)
class CellChange:
    scenario: str
    runtime: str
    change: Change
    before: str | None
    after: str | None

    def text(self) -> str:
        return f"{self.change.value:>9}  {self.scenario} @ {self.runtime}: {self.before or '-'} -> {self.after or '-'}"


def compare(before: Outcome, after: Outcome) -> Change:
    if before == after:
        return Change.UNCHANGED
    if after == Outcome.ERROR:
        return Change.REGRESSED
    if before == Outcome.ERROR:
        return Change.IMPROVED
    if before in RANK and after in RANK:
        return Change.REGRESSED if RANK[after] > RANK[before] else Change.IMPROVED
    return Change.CHANGED


def diff(a: dict[str, Any], b: dict[str, Any]) -> list[CellChange]:
    """Every (scenario, runtime) of either document, sorted by change kind, then scenario and runtime."""
    old = {(c["scenario"], c["runtime"]): Outcome(c["outcome"]) for c in a["cells"]}
    new = {(c["scenario"], c["runtime"]): Outcome(c["outcome"]) for c in b["cells"]}
    changes = []
    for key in sorted(old.keys() | new.keys()):
        if key not in new:
            changes.append(CellChange(*key, Change.REMOVED, old[key].value, None))
        elif key not in old:
            changes.append(CellChange(*key, Change.ADDED, None, new[key].value))
        else:
            changes.append(CellChange(*key, compare(old[key], new[key]), old[key].value, new[key].value))
    return sorted(changes, key=lambda c: (ORDER.index(c.change), c.scenario, c.runtime))


def counts(changes: list[CellChange]) -> dict[str, int]:
    n = Counter(c.change for c in changes)
    return {k.value: n[k] for k in ORDER}


def to_json(a: dict[str, Any], b: dict[str, Any], changes: list[CellChange]) -> str:
    doc = {"before": a["run_id"], "after": b["run_id"], "counts": counts(changes),
           "cells": [{**asdict(c), "change": c.change.value} for c in changes]}
    return json.dumps(doc, indent=1, sort_keys=True) + "\n"


def to_text(a: dict[str, Any], b: dict[str, Any], changes: list[CellChange], *, all_cells: bool = False) -> str:
    head = f"{a['run_id']} -> {b['run_id']}: " + ", ".join(f"{n} {k}" for k, n in counts(changes).items())
    shown = [c.text() for c in changes if all_cells or c.change != Change.UNCHANGED]
    return "\n".join([head, *shown]) + "\n"
