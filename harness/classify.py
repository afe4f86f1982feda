"""Turn what the baseline and a target observably did into a cell outcome. The only place these rules live."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.outcomes import Outcome

Normaliser = Callable[[dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class Observed:
    """One execution of a scenario's oracle under one runtime."""

    observation: dict[str, Any] | None = None
    refusal: str | None = None
    """The Docker operation failed under this runtime; the text is the evidence."""
    error: str | None = None
    """The suite itself failed (an exception in the oracle or the harness), or lost the Docker daemon."""
    host_changes: tuple[str, ...] = field(default_factory=tuple)
    """Host state that differed after the scenario and its clean-up, and anything left behind."""
    timed_out: str | None = None
    """A Docker operation or the whole oracle did not finish in time under this runtime."""
    unavailable: str | None = None
    """For a refused baseline: the declared reason that holds on this host ("id: what is missing"), if any."""


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def _identity(obs: dict[str, Any]) -> dict[str, Any]:
    return obs


def classify(baseline: Observed, target: Observed, normalise: Normaliser | None = None) -> Outcome:
    """One comparison. Host impact first: what a runtime left on the host counts even when something failed.
    A baseline failure is never the target's limitation: it is `baseline-unavailable` only for a reason the
    scenario declares and the host confirms, otherwise the suite's `error`; a suite failure is never a result."""
    if set(target.host_changes) - set(baseline.host_changes):
        return Outcome.HOST_IMPACT
    if baseline.error is not None or target.error is not None or baseline.timed_out is not None:
        return Outcome.ERROR
    if baseline.unavailable is not None:
        return Outcome.BASELINE_UNAVAILABLE
    if baseline.refusal is not None:
        return Outcome.ERROR
    if target.timed_out is not None:
        return Outcome.TIMED_OUT
    if target.refusal is not None:
        return Outcome.REFUSED
    if baseline.observation is None or target.observation is None:
        return Outcome.ERROR
    norm = normalise or _identity
    same = canonical(norm(baseline.observation)) == canonical(norm(target.observation))
    return Outcome.SAME if same else Outcome.DIFFERS


def combine_examples(outcomes: Sequence[Outcome]) -> Outcome:
    """A parameterised scenario: the worst example decides (host impact above all); examples runc cannot do
    on this host, for a declared reason, are set aside."""
    if not outcomes:
        return Outcome.ERROR
    for decisive in (Outcome.HOST_IMPACT, Outcome.ERROR, Outcome.FLAKY):
        if decisive in outcomes:
            return decisive
    usable = [o for o in outcomes if o != Outcome.BASELINE_UNAVAILABLE]
    if not usable:
        return Outcome.BASELINE_UNAVAILABLE
    for worst in (Outcome.TIMED_OUT, Outcome.REFUSED, Outcome.DIFFERS):
        if worst in usable:
            return worst
    return Outcome.SAME


_IDS = re.compile(r"\b[0-9a-f]{64}\b|\b[0-9a-f]{12}\b|/var/lib/vmparity/daemons/d[0-9a-f]+|/run/vmparity/d[0-9a-f]+")


def stable_refusal(text: str) -> str:
    """A refusal as evidence of *what* failed: container ids and disposable paths differ on every attempt."""
    return _IDS.sub("<id>", text)


def combine_attempts(attempts: Sequence[tuple[Outcome, Any]]) -> Outcome:
    """Repeated runs of one cell: (outcome, normalised target observation) each. Disagreement is flaky."""
    if not attempts:
        return Outcome.ERROR
    outcomes = [o for o, _ in attempts]
    for decisive in (Outcome.HOST_IMPACT, Outcome.ERROR):
        if decisive in outcomes:
            return decisive
    if len({canonical(obs) for _, obs in attempts}) > 1 or len(set(outcomes)) > 1:
        return Outcome.FLAKY
    return outcomes[0]
