"""The effect Docker documents for a scenario, as named checks over an observation.

Where runc cannot do a scenario on this host there is nothing to compare a target with, yet a user still wants
to know whether `--privileged` works under it. A scenario states what Docker's documentation promises as
checks; the target's observation is judged against them whenever the baseline is unavailable. The result is a
second verdict of the cell (meets / fails / unjudged), next to its outcome, never instead of it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from harness.outcomes import Documented


@dataclass(frozen=True)
class Check:
    name: str
    """What Docker documents, in a few words a reader of the matrix understands."""
    holds: Callable[[Mapping[str, Any]], bool]


@dataclass(frozen=True)
class Judgement:
    verdict: Documented
    failed: tuple[str, ...] = ()
    """The checks that did not hold (or why none could be applied)."""

    def record(self) -> dict[str, Any]:
        return {"verdict": str(self.verdict), "failed": list(self.failed)}


def judge_example(checks: Sequence[Check], observation: Mapping[str, Any] | None, refusal: str | None,
                  timed_out: str | None, error: str | None) -> Judgement:
    """One execution of the target. Refusing or hanging is not doing what Docker documents."""
    if not checks or error is not None:
        return Judgement(Documented.UNJUDGED, ("the scenario states no documented effect",) if not checks else
                         ("the suite failed under the target",))
    if timed_out is not None:
        return Judgement(Documented.FAILS, (f"it hung: {timed_out[:300]}",))
    if refusal is not None:
        return Judgement(Documented.FAILS, (f"Docker refused: {refusal[:300]}",))
    if observation is None:
        return Judgement(Documented.UNJUDGED, ("no observation",))
    failed = []
    for check in checks:
        try:
            ok = bool(check.holds(observation))
        except (KeyError, TypeError, ValueError, IndexError) as e:
            ok = False
            failed.append(f"{check.name} (the observation cannot tell: {e.__class__.__name__}: {e})")
            continue
        if not ok:
            failed.append(check.name)
    return Judgement(Documented.FAILS if failed else Documented.MEETS, tuple(failed))


def combine(judgements: Sequence[Judgement]) -> Judgement | None:
    """A cell's examples: any failure fails it; it meets only when every judged example met."""
    if not judgements:
        return None
    failed = tuple(dict.fromkeys(f for j in judgements for f in j.failed))
    verdicts = {j.verdict for j in judgements}
    if Documented.FAILS in verdicts:
        return Judgement(Documented.FAILS, failed)
    if Documented.UNJUDGED in verdicts:
        return Judgement(Documented.UNJUDGED, failed)
    return Judgement(Documented.MEETS)
