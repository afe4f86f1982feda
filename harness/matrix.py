"""The matrix every report is drawn from: registry text + one run's cells, joined per (scenario, runtime).

Markdown, HTML, JUnit and the gate all read this one model, so they can never disagree about which cells
exist, what was expected of them, or in which order they appear. Building it is pure: no clock, no file
system beyond what the caller passes in, and every collection has a fixed order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from harness import runtime_data
from harness.outcomes import Documented, Outcome, Verdict, documented_verdict, verdict
from harness.registry import Expectation, Registry

UNREGISTERED = "unregistered"
UNREGISTERED_TITLE = "Not in the registry"
UNREGISTERED_TEXT = ("The run recorded cells for these scenarios but limitations.yaml does not describe them; "
                     "add an entry (title, section, severity, summary, expect) for each.")

NOT_IN_RUN = "the runtime was not part of this run"
NO_CELL = "the run recorded no result for this cell"


STACK_SEP = "@"
"""A document that joins runs from several stacks names its columns runtime@stack (harness/merge.py)."""


def base_runtime(name: str) -> str:
    """The runtime of a column: `runvm` for both `runvm` and `runvm@current`."""
    return name.split(STACK_SEP, 1)[0]


def stack_of(name: str) -> str | None:
    return name.split(STACK_SEP, 1)[1] if STACK_SEP in name else None


def is_baseline(name: str, baseline: str) -> bool:
    return base_runtime(name) == baseline


@dataclass(frozen=True)
class RuntimeView:
    name: str
    description: str
    link: str | None
    in_run: bool
    is_baseline: bool
    info: dict[str, Any]
    """The run's provenance for this runtime (path, args, version, ...); empty when not in the run."""

    @property
    def runtime(self) -> str:
        return base_runtime(self.name)

    @property
    def stack(self) -> str | None:
        return stack_of(self.name)

    @property
    def label(self) -> str:
        head = f"{self.runtime} (A/A)" if self.is_baseline else self.runtime
        return f"{head}{STACK_SEP}{self.stack}" if self.stack else head


@dataclass(frozen=True)
class CellView:
    scenario: str
    runtime: str
    outcome: Outcome
    expectation: Expectation | None
    verdict: Verdict | None
    """None when the runtime was not in the run: there is nothing to judge."""
    in_run: bool
    record: dict[str, Any] | None
    """The results.json cell, None when the run has no record for it."""
    note: str | None = None
    """Why the cell has no record, or the record's own reason."""
    documented: Documented | None = None
    """Where the baseline was unavailable: did the target do what Docker documents?"""
    documented_failed: tuple[str, ...] = ()
    documented_verdict: Verdict | None = None
    """The documented result against the registry's `documented` expectation (None: nothing to judge)."""

    @property
    def silent(self) -> bool:
        """Nothing was expected of this cell and nothing recorded: no verdict worth reporting."""
        return self.record is None and self.expectation is None


@dataclass(frozen=True)
class ScenarioView:
    id: str
    title: str
    section: str
    area: str
    severity: str
    summary: str
    oracle: str | None
    workaround: str | None
    links: tuple[str, ...]
    registered: bool
    cells: tuple[CellView, ...]
    documented: tuple[str, ...] = ()
    """The checks of Docker's documented effect, in words."""
    unavailable_when: tuple[str, ...] = ()
    """The declared host deficits that may make runc's baseline unavailable ("id: text")."""

    @property
    def anchor(self) -> str:
        return self.id.replace("/", "-").replace("_", "-")

    @property
    def drift(self) -> tuple[tuple[str, tuple[tuple[str, Outcome], ...]], ...]:
        """Version drift: each runtime whose outcome differs between the stacks it was observed on, with the
        outcome per stack."""
        per: dict[str, list[tuple[str, Outcome]]] = {}
        for c in self.cells:
            stack = stack_of(c.runtime)
            if stack is not None and c.record is not None:
                per.setdefault(base_runtime(c.runtime), []).append((stack, c.outcome))
        return tuple((rt, tuple(seen)) for rt, seen in per.items() if len({o for _, o in seen}) > 1)

    def cell(self, runtime: str) -> CellView:
        for c in self.cells:
            if c.runtime == runtime:
                return c
        raise KeyError(runtime)


@dataclass(frozen=True)
class AreaView:
    key: str
    title: str
    scenarios: tuple[ScenarioView, ...]


@dataclass(frozen=True)
class SectionView:
    key: str
    title: str
    text: str
    areas: tuple[AreaView, ...]


@dataclass(frozen=True)
class Matrix:
    title: str
    intro: str
    source: str | None
    run_id: str
    baseline: str
    runtimes: tuple[RuntimeView, ...]
    sections: tuple[SectionView, ...]
    provenance: dict[str, Any]
    hosts: dict[str, dict[str, Any]]

    @property
    def scenarios(self) -> tuple[ScenarioView, ...]:
        return tuple(s for sec in self.sections for a in sec.areas for s in a.scenarios)

    @property
    def cells(self) -> tuple[CellView, ...]:
        return tuple(c for s in self.scenarios for c in s.cells)

    @property
    def run_runtimes(self) -> tuple[RuntimeView, ...]:
        return tuple(r for r in self.runtimes if r.in_run)

    def scenario(self, scenario_id: str) -> ScenarioView:
        for s in self.scenarios:
            if s.id == scenario_id:
                return s
        raise KeyError(scenario_id)


def run_runtimes(doc: dict[str, Any]) -> list[str]:
    """The runtimes a results document covers: the declared targets, plus any a cell names (merged documents)."""
    names = list(dict.fromkeys(doc["runtimes"]))
    names += sorted({c["runtime"] for c in doc["cells"]} - set(names))
    return names


def _runtimes(described: dict[str, runtime_data.RuntimeData], doc: dict[str, Any]) -> tuple[RuntimeView, ...]:
    """The described runtimes in their column order (runtimes/*.yaml), then runtimes only the run knows, by name."""
    registered = described
    in_run = run_runtimes(doc)
    if any(stack_of(n) for n in in_run):  # several stacks: each stack's columns together, the leading stack first
        order = {n: i for i, n in enumerate(registered)}
        stacks = list(dict.fromkeys((doc["provenance"].get("stack_order") or [])
                                    + sorted({stack_of(n) or "" for n in in_run})))
        qualified = sorted(in_run, key=lambda n: (stacks.index(stack_of(n) or ""),
                                                  order.get(base_runtime(n), len(order)), n))
        names = [*qualified, *[r for r in registered if r not in {base_runtime(n) for n in in_run}]]
    else:
        names = [*registered, *sorted(set(in_run) - set(registered))]
    infos = doc["provenance"].get("runtimes", {}) or {}
    hosts = doc.get("hosts") or {}
    views = []
    for name in names:
        meta = registered.get(base_runtime(name))
        info: dict[str, Any] = infos.get(name) or next((h["runtimes"][name] for _, h in sorted(hosts.items())
                                        if name in (h.get("runtimes") or {})), {})
        views.append(RuntimeView(name, meta.description if meta else "", meta.link if meta else None, name in in_run,
                                 is_baseline(name, doc["baseline"]), dict(info) if name in in_run else {}))
    return tuple(views)


def _cell_view(scenario: str, runtime: RuntimeView, record: dict[str, Any] | None,
               expectation: Expectation | None) -> CellView:
    if not runtime.in_run:
        return CellView(scenario, runtime.name, Outcome.NOT_RUN, expectation, None, False, None, NOT_IN_RUN)
    if record is None:
        return CellView(scenario, runtime.name, Outcome.NOT_RUN, expectation,
                        expectation.judge(Outcome.NOT_RUN) if expectation else verdict(Outcome.NOT_RUN, None),
                        True, None, NO_CELL)
    outcome = Outcome(record["outcome"])
    judged = expectation.judge(outcome) if expectation else verdict(outcome, None)
    doc = record.get("documented")
    documented = Documented(doc["verdict"]) if doc else None
    expected_doc = expectation.documented if expectation else None
    doc_verdict = (documented_verdict(documented, expected_doc) if documented is not None
                   else documented_verdict(Documented.UNJUDGED, expected_doc) if expected_doc is not None
                   and outcome == Outcome.BASELINE_UNAVAILABLE else None)
    return CellView(scenario, runtime.name, outcome, expectation, judged, True, record,
                    record.get("reason"), documented, tuple(doc["failed"]) if doc else (), doc_verdict)


def _unregistered_entry(scenario_id: str) -> dict[str, Any]:
    return {"id": scenario_id, "title": scenario_id, "section": UNREGISTERED, "severity": "MAY",
            "summary": "No registry entry.", "expect": {}}


def build(registry: Registry, doc: dict[str, Any],
          described: dict[str, runtime_data.RuntimeData] | None = None) -> Matrix:
    """Join the registry with a (schema-valid) results document."""
    runtimes = _runtimes(runtime_data.load() if described is None else described, doc)
    records = {(c["scenario"], c["runtime"]): c for c in doc["cells"]}
    entries = list(registry.raw["scenarios"])
    known = {e["id"] for e in entries}
    entries += [_unregistered_entry(i) for i in sorted({c["scenario"] for c in doc["cells"]} - known)]

    areas_meta: dict[str, str] = dict(registry.raw.get("areas") or {})
    sections_meta: dict[str, dict[str, str]] = dict(registry.raw["sections"])
    sections_meta.setdefault(UNREGISTERED, {"title": UNREGISTERED_TITLE, "text": UNREGISTERED_TEXT})

    grouped: dict[str, dict[str, list[ScenarioView]]] = {}
    for e in entries:
        area = e["id"].split("/", 1)[0]
        registered = e["id"] in known
        cells = tuple(_cell_view(e["id"], r, records.get((e["id"], r.name)),
                                 registry.expectation(e["id"], r.name) if registered else None)
                      for r in runtimes)
        view = ScenarioView(
            id=e["id"], title=e["title"], section=e["section"], area=area, severity=e["severity"],
            summary=" ".join(e["summary"].split()), oracle=e.get("oracle"), workaround=e.get("workaround"),
            links=tuple(e.get("links") or ()), registered=e["id"] in known, cells=cells,
            documented=tuple(e.get("documented") or ()),
            unavailable_when=tuple(f"{r['id']} ({r['text']})" for r in e.get("unavailable_when") or ()),
        )
        grouped.setdefault(e["section"], {}).setdefault(area, []).append(view)

    area_order = [*areas_meta, *sorted({a for by_area in grouped.values() for a in by_area} - set(areas_meta))]
    sections = []
    for key, meta in sections_meta.items():
        if key not in grouped:
            continue
        areas = tuple(AreaView(a, areas_meta.get(a, a), tuple(grouped[key][a]))
                      for a in area_order if a in grouped[key])
        sections.append(SectionView(key, meta["title"], " ".join(meta["text"].split()), areas))

    document = registry.raw["document"]
    return Matrix(
        title=document["title"], intro=" ".join(document["intro"].split()), source=document.get("source"),
        run_id=doc["run_id"], baseline=doc["baseline"], runtimes=runtimes, sections=tuple(sections),
        provenance=doc["provenance"], hosts=dict(sorted((doc.get("hosts") or {}).items())),
    )
