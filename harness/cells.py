"""Running one (scenario, runtime) cell: the oracle under the baseline and the target, compared and recorded."""

from __future__ import annotations

import time
import traceback
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings

from harness import cleanup, deadline, documented, hostlacks, hoststate, leftovers, procs
from harness.classify import Observed, canonical, classify, combine_attempts, combine_examples, stable_refusal
from harness.context import Ctx, Evidence, Refused, TimedOut
from harness.outcomes import Documented, Outcome, documented_verdict, verdict
from harness.scenario import Scenario
from harness.session import Session
from harness.waiting import poll


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


SETTLE_S = 10.0
"""How long Docker may take to finish tearing a removed container down before what remains is a leftover."""


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
                  docker_host=self.s.endpoint.docker_url, on_create=remember, stack=self.s.endpoint)
        before = hoststate.snapshot(self.s.exec_root) if spec.host_sensitive else None
        observation = refusal = error = timed_out = None
        try:
            with deadline.limit(spec.timeout, f"{spec.id} under {runtime}"):
                observation = spec.observe(ctx, **params)
            if not isinstance(observation, dict):
                raise TypeError(f"oracle of {spec.id} returned {type(observation).__name__}, not a dict")
            canonical(observation)
        except (TimedOut, deadline.ScenarioTimeout) as e:
            timed_out = str(e)
        except Refused as e:
            refusal = str(e)
        except Exception:  # a bug in the oracle, or DaemonLost: the suite could not observe
            error = traceback.format_exc()
        # Recorded before anything is cleaned up: an oracle's clean-up may put a host value back.
        changes = hoststate.diff(before, {**before, **hoststate.sysctls()}) if before is not None else []
        if timed_out is not None:
            # A hung runtime would hang `docker rm -f` too: end its shims first, by pid, and say so.
            killed = [f"shim {pid} of {cid}: pids {procs.kill_tree(pid)}"
                      for cid, pid in cleanup.shims_by_container().items() if cid in created]
            if killed:
                evidence.save("timeout-killed.txt", "\n".join(killed) + "\n")
        problems = ctx.cleanup()
        left = self._leftovers(runtime, created)
        markers = (*created, *ctx.daemon_names)
        if before is not None:
            settled = hoststate.settled_diff(before, markers, docker_exec_root=self.s.exec_root)
            changes = list(dict.fromkeys([*changes, *settled]))
        if problems or left:
            evidence.save("leftovers.txt", "\n".join(problems + left) + "\n")
        changes = [*changes, *(f"left behind: {p}" for p in [*problems, *left])]
        evidence.save("commands.txt", "\n".join(evidence.commands) + "\n")
        if ctx.notes:
            evidence.save("notes.json", ctx.notes)
        unavailable = None
        if runtime == self.s.baseline and error is None and timed_out is None:
            unavailable, error = self._unavailable(spec, observation, refusal)
        return Observed(observation, refusal, error, tuple(changes), timed_out, unavailable)

    def _unavailable(self, spec: Scenario, observation: dict[str, Any] | None,
                     refusal: str | None) -> tuple[str | None, str | None]:
        """Whether runc's failure is one the scenario declares and the host confirms: (reason, error).
        runc failed when Docker refused, or when it did not produce what Docker documents."""
        failed = refusal is not None or (
            bool(spec.documented) and documented.judge_example(spec.documented, observation, None, None, None)
            .verdict == Documented.FAILS)
        if not failed:
            return None, None
        declared = self.s.registry.unavailable_when(spec.id)
        lacking = hostlacks.first_lacking(declared, self.s.endpoint)
        if lacking is not None:
            return f"{lacking[0]}: {lacking[1]}", None
        if refusal is None:
            return None, None  # runc did less than Docker documents, on a host that lacks nothing: compare
        return None, (f"runc's baseline failed, and no reason the scenario declares holds on this host "
                      f"(declared: {', '.join(declared) or 'none'}): {refusal}")

    def _leftovers(self, runtime: str, created: set[str]) -> list[str]:
        """Processes, shims and runtime state the cell's containers left, given Docker a moment to finish."""
        if not created:
            return []
        info = self.s.available.get(runtime)

        def look() -> tuple[list[str], dict[str, int]]:
            shims = cleanup.orphan_shims(created, self.s.client)
            return [*leftovers.in_cgroups(created),
                    *(line for cid, pid in shims.items() for line in leftovers.describe_shim(cid, pid)),
                    *(leftovers.runtime_reported(runtime, info.path, info.args, created, self.s.exec_root)
                      if info else [])], shims

        found, shims = poll(look, lambda seen: not seen[0], SETTLE_S, interval=0.5).value
        for pid in shims.values():
            procs.kill_tree(pid)  # found and reported; the next cell must not inherit it
        return found

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
        judged: list[documented.Judgement] = []
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
                example = {"params": params, "attempt": attempt, "baseline": _observed(base),
                           "target": _observed(tgt), "outcome": str(outcome)}
                if outcome == Outcome.BASELINE_UNAVAILABLE:
                    j = documented.judge_example(spec.documented, tgt.observation, tgt.refusal, tgt.timed_out,
                                                 tgt.error)
                    judged.append(j)
                    example["documented"] = j.record()
                examples.append(example)
            per_example.append(combine_attempts(attempts))
        outcome = combine_examples(per_example)
        exp = self.s.registry.expectation(spec.id, target)
        judgement = documented.combine(judged) if outcome == Outcome.BASELINE_UNAVAILABLE else None
        unavailable = sorted({e["baseline"]["unavailable"] for e in examples if e["baseline"]["unavailable"]})
        cell = {
            "scenario": spec.id, "runtime": target, "run_id": self.s.run_id, "outcome": str(outcome),
            "reason": "; ".join(unavailable) if outcome == Outcome.BASELINE_UNAVAILABLE else None,
            "documented": judgement.record() if judgement else None,
            "examples": examples, "attempts": self.s.options.repeat,
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
        if judgement is not None:
            expected = exp.documented if exp else None
            dv = documented_verdict(judgement.verdict, expected)
            self.s.verdicts.append((spec.id, target, f"documented {judgement.verdict}",
                                    f"documented {expected}" if expected else None, str(dv)))


def _observed(o: Observed) -> dict[str, Any]:
    return {"observation": o.observation, "refusal": o.refusal, "error": o.error,
            "host_changes": list(o.host_changes), "timed_out": o.timed_out, "unavailable": o.unavailable}
