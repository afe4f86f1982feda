"""The scenario model: an id, an oracle that returns observed effects, and how to run and compare it.

A scenario file under tests/<area>/ declares one oracle with @scenario; the decorator turns it into a pytest
test parametrised over the run's runtimes (see harness/cells.py for what a cell does).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st

from harness.classify import Normaliser
from harness.documented import Check

Oracle = Callable[..., dict[str, Any]]

SCENARIOS: dict[str, Scenario] = {}
DEFAULT_TIMEOUT_S = 150.0
"""Far above any healthy cell (runvm's slowest take ~20 s under TCG), well below Docker's 180 s client timeout."""


@dataclass(frozen=True)
class Scenario:
    id: str
    observe: Oracle
    params: st.SearchStrategy[dict[str, Any]] | None = None
    """Hypothesis strategy drawing one parameter dict per example (None: the oracle takes no parameters)."""
    examples: tuple[dict[str, Any], ...] = ()
    """Parameter dicts always run, before the drawn ones."""
    normalise: Normaliser | None = None
    host_sensitive: bool = False
    """Snapshot host state around the oracle; a difference is `host-impact`."""
    pairs_with_baseline: bool = False
    """The oracle also starts containers under the baseline runtime itself (e.g. --net=container pairs)."""
    timeout: float = DEFAULT_TIMEOUT_S
    """Seconds one execution of the oracle (one example, one attempt, one runtime) may take; then timed-out."""
    documented: tuple[Check, ...] = ()
    """What Docker documents as the effect, judged on the target wherever the baseline is unavailable."""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def area(self) -> str:
        return self.id.split("/", 1)[0]


def scenario(scenario_id: str, *, params: st.SearchStrategy[dict[str, Any]] | None = None,
             examples: list[dict[str, Any]] | None = None, normalise: Normaliser | None = None,
             host_sensitive: bool = False, pairs_with_baseline: bool = False,
             timeout: float = DEFAULT_TIMEOUT_S,
             documented: list[Check] | tuple[Check, ...] = ()) -> Callable[[Oracle], Callable[..., None]]:
    """Register an oracle and return the pytest test that runs it for one (scenario, runtime) cell."""

    def decorate(fn: Oracle) -> Callable[..., None]:
        if scenario_id in SCENARIOS and SCENARIOS[scenario_id].observe.__module__ != fn.__module__:
            raise ValueError(f"scenario id {scenario_id!r} declared twice "
                             f"({SCENARIOS[scenario_id].observe.__module__} and {fn.__module__})")
        spec = Scenario(scenario_id, fn, params, tuple(examples or ()), normalise, host_sensitive,
                        pairs_with_baseline, timeout, tuple(documented))
        SCENARIOS[scenario_id] = spec

        def test(cell_runner: Any, target: str) -> None:
            cell_runner.run(spec, target)

        test.__name__ = fn.__name__
        test.__qualname__ = fn.__qualname__
        test.__module__ = fn.__module__
        test.__doc__ = fn.__doc__
        test.scenario = spec  # type: ignore[attr-defined]
        return test

    return decorate
