"""limitations.yaml: each scenario's text, links, severity and the expected outcome per runtime."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from harness import paths, runtime_data, schema
from harness.outcomes import Documented, Outcome, Verdict, verdict


@dataclass(frozen=True)
class Expectation:
    outcome: Outcome
    reason: str
    link: str | None = None
    tolerate: tuple[Outcome, ...] = ()
    """Other outcomes seen for this cell on healthy runs (a race in the runtime, say): the reason says why."""
    documented: Documented | None = None
    """For a cell whose baseline is unavailable: whether the target is expected to do what Docker documents."""

    def judge(self, observed: Outcome) -> Verdict:
        if observed in self.tolerate:
            return Verdict.EXPECTED
        return verdict(observed, self.outcome)


@dataclass(frozen=True)
class Registry:
    raw: dict[str, Any]

    @property
    def scenarios(self) -> dict[str, dict[str, Any]]:
        return {s["id"]: s for s in self.raw["scenarios"]}

    def scenario(self, scenario_id: str) -> dict[str, Any]:
        try:
            return self.scenarios[scenario_id]
        except KeyError:
            raise KeyError(f"scenario {scenario_id!r} is not in {paths.REGISTRY.name}; add its entry "
                           "(title, section, severity, summary, expect)") from None

    def expectation(self, scenario_id: str, runtime: str) -> Expectation | None:
        expect = self.scenario(scenario_id).get("expect", {})
        # a column of a several-stack document (runvm@current) may have its own entry, else its runtime's
        base, _, stack = runtime.partition("@")
        like = runtime_data.expect_like(base)
        exp = ((expect.get(runtime) if stack else None) or expect.get(base)
               or (expect.get(f"{like}@{stack}") if like and stack else None) or (expect.get(like) if like else None))
        if exp is None:
            return None
        found = Expectation(Outcome(exp["outcome"]), exp["reason"], exp.get("link"),
                            tuple(Outcome(o) for o in exp.get("tolerate") or ()),
                            Documented(exp["documented"]) if exp.get("documented") else None)
        column = (self.raw.get("columns") or {}).get(runtime) if stack else None
        if column is None:
            return found
        return replace(found, reason=f"{found.reason}; on this stack: {column['reason']}",
                       tolerate=found.tolerate + tuple(Outcome(o) for o in column["tolerate"]))

    def unavailable_when(self, scenario_id: str) -> tuple[str, ...]:
        """The ids of the host deficits (harness/hostlacks.py) that may make runc's baseline unavailable."""
        return tuple(r["id"] for r in self.scenario(scenario_id).get("unavailable_when") or ())


def load(path: Path = paths.REGISTRY) -> Registry:
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as e:
        raise SystemExit(f"cannot read the registry {path}: {e.strerror}") from e
    except yaml.YAMLError as e:
        raise schema.SchemaError(f"{path}: not valid YAML: {e}") from e
    schema.validate("registry", raw)
    ids = [s["id"] for s in raw["scenarios"]]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise schema.SchemaError(f"{path}: duplicate scenario ids: {', '.join(dupes)}")
    unknown = sorted({s["section"] for s in raw["scenarios"]} - set(raw["sections"]))
    if unknown:
        raise schema.SchemaError(f"{path}: scenarios use undefined sections: {', '.join(unknown)}")
    return Registry(raw)
