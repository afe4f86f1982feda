"""Running one (scenario, runtime) cell: the oracle under the baseline and the target, compared and recorded."""

from __future__ import annotations

import time
import traceback
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings

from harness import cleanup, hoststate
from harness.classify import Observed, canonical, classify, combine_attempts, combine_examples, stable_refusal
from harness.context import Ctx, Evidence, Refused
from harness.outcomes import Outcome, verdict
from harness.scenario import Scenario
from harness.session import Session


def draw_examples(spec: Scenario, budget: int) -> list[dict[str, Any]]:
    """The explicit examples, then `budget` drawn ones; derandomised, so every runtime gets the same values."""
    chosen = list(spec.examples)
    if spec.params is not None and budget > 0:
        drawn: list[dict[str, Any]] = []

        @settings(max_examples=budget, derandomize=True, database=None, deadline=None,
                  phases=[Phase.generate], suppress_health_check=list(HealthCheck))
        @given(spec.params)
        def collect(params: dict[str, Any]) -> None:
            drawn.append(params)

        collect()
        chosen += drawn
    unique: dict[str, dict[str, Any]] = {}
    for p in chosen or [{}]:
        unique.setdefault(canonical(p), p)
    return list(unique.values())


def _cell_dir(run_dir: Path, scenario_id: str, runtime: str) -> Path:
    return run_dir / "cells" / scenario_id.replace("/", "__") / runtime


class CellRunner:
    def __init__(self, session: Session) -> None:
        self.s = session

    def execute(self, spec: Scenario, runtime: str, params: dict[str, Any], evidence: Evidence) -> Observed:
        created: set[str] = set()

        def remember(container_id: str) -> None:
            created.add(container_id)
            self.s.lock.remember(container_id)

        ctx = Ctx(self.s.client, runtime, self.s.run_id, f"{spec.id}@{runtime}", self.s.image, evidence,
                  on_create=remember)
        before = hoststate.snapshot() if spec.host_sensitive else None
        observation = refusal = error = None
        try:
            observation = spec.observe(ctx, **params)
            if not isinstance(observation, dict):
                raise TypeError(f"oracle of {spec.id} returned {type(observation).__name__}, not a dict")
            canonical(observation)
        except Refused as e:
            refusal = str(e)
        except Exception:
            error = traceback.format_exc()
        problems = ctx.cleanup()
        leaks = cleanup.kill_orphan_shims(created, self.s.client)
        markers = (*created, *ctx.daemon_names)
        changes = hoststate.settled_diff(before, markers) if before is not None else []
        if problems or leaks:
            evidence.save("leftovers.txt", "\n".join(problems + leaks) + "\n")
        if problems and error is None and refusal is None:
            changes = [*changes, *(f"left behind: {p}" for p in problems)]
        evidence.save("commands.txt", "\n".join(evidence.commands) + "\n")
        if ctx.notes:
            evidence.save("notes.json", ctx.notes)
        return Observed(observation, refusal, error, tuple(changes))

    def _baseline(self, spec: Scenario, params: dict[str, Any], attempt: int, where: Path) -> Observed:
        key = (spec.id, canonical(params), attempt)
        if key not in self.s.baseline_cache:
            ev = Evidence(where / f"example-{len(self.s.baseline_cache) % 1000}-attempt-{attempt}")
            self.s.baseline_cache[key] = self.execute(spec, self.s.baseline, params, ev)
        return self.s.baseline_cache[key]

    def run(self, spec: Scenario, target: str) -> None:
        started = time.monotonic()
        cell_dir = _cell_dir(self.s.run_dir, spec.id, target)
        base_dir = _cell_dir(self.s.run_dir, spec.id, f"_baseline-{self.s.baseline}")
        examples: list[dict[str, Any]] = []
        per_example: list[Outcome] = []
        commands: list[str] = []
        for i, params in enumerate(draw_examples(spec, self.s.options.budget(target))):
            attempts = []
            for attempt in range(1, self.s.options.repeat + 1):
                base = self._baseline(spec, params, attempt, base_dir)
                ev = Evidence(cell_dir / f"example-{i}-attempt-{attempt}")
                tgt = self.execute(spec, target, params, ev)
                commands += ev.commands
                outcome = classify(base, tgt, spec.normalise)
                norm = ((spec.normalise or (lambda o: o))(tgt.observation) if tgt.observation is not None
                        else stable_refusal(tgt.refusal or ""))
                attempts.append((outcome, norm))
                examples.append({"params": params, "attempt": attempt, "baseline": _observed(base),
                                 "target": _observed(tgt), "outcome": str(outcome)})
            per_example.append(combine_attempts(attempts))
        outcome = combine_examples(per_example)
        exp = self.s.registry.expectation(spec.id, target)
        cell = {
            "scenario": spec.id, "runtime": target, "run_id": self.s.run_id, "outcome": str(outcome),
            "reason": None, "examples": examples, "attempts": self.s.options.repeat,
            "duration_s": round(time.monotonic() - started, 2),
            "evidence": {"dir": str(cell_dir.relative_to(self.s.run_dir)), "commands": commands[:200]},
        }
        self.s.store.record(cell)
        if outcome == Outcome.ERROR:
            errors = [e["target"]["error"] or e["baseline"]["error"] for e in examples
                      if e["target"]["error"] or e["baseline"]["error"]]
            pytest.fail(f"{spec.id} under {target}: the suite failed (error cell):\n{errors[0] if errors else ''}",
                        pytrace=False)
        v = exp.judge(outcome) if exp else verdict(outcome, None)
        self.s.verdicts.append((spec.id, target, str(outcome), str(exp.outcome) if exp else None, str(v)))


def _observed(o: Observed) -> dict[str, Any]:
    return {"observation": o.observation, "refusal": o.refusal, "error": o.error,
            "host_changes": list(o.host_changes)}
