"""Several results documents (hosts, shards) into one, still one cell per (scenario, runtime).

Decision: a matrix cell has one outcome, so when inputs disagree the worse outcome is kept and the
disagreement is recorded in provenance["merge"]["conflicts"] (every run's outcome for that cell), which
the Markdown render prints under the scenario. Keeping the worse errs on the side of the user: a runtime
that breaks on one host of the fleet breaks. "Worse" follows the gate: error first (a suite failure must
stay visible), then the ranked outcomes from bad to good, then the outcomes that say nothing about the
runtime (baseline-unavailable, then not-run), so an informative cell from one host beats an uninformative
one from another. Equal outcomes are not a conflict; the cell from the first run (by run id) is kept.
`prefer=LATEST` is for re-runs of the same matrix on one host: the cell from the run started last wins,
and disagreements are still recorded.
Every input's provenance goes into the "hosts" map by run id, and each kept cell names its run_id, so a
cell can be traced to the host and the evidence directory it came from.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from harness import schema
from harness.outcomes import RANK, Outcome

WORSE = "worse"
LATEST = "latest"
RULES = {WORSE: "the worse outcome is kept", LATEST: "the outcome from the run started last is kept"}


class MergeError(ValueError):
    """The inputs cannot form one matrix (different baselines, a run id reused for different runs)."""


def badness(outcome: Outcome | str) -> int:
    """Higher is worse; see the module docstring for why unranked outcomes sit below `same`."""
    o = Outcome(outcome)
    if o == Outcome.ERROR:
        return 100
    if o in RANK:
        return 10 + RANK[o]
    return {Outcome.BASELINE_UNAVAILABLE: 1, Outcome.NOT_RUN: 0}[o]


def _run_id(docs: Sequence[dict[str, Any]]) -> str:
    digest = hashlib.sha256("\n".join(sorted(d["run_id"] for d in docs)).encode()).hexdigest()[:8]
    return f"merged-{digest}"


def _provenances(docs: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    hosts: dict[str, dict[str, Any]] = {}
    for d in docs:
        contributed = d.get("hosts") or {d["run_id"]: d["provenance"]}  # a merged input brings its hosts
        for run_id, prov in contributed.items():
            if run_id in hosts and hosts[run_id] != prov:
                raise MergeError(f"run id {run_id} appears in two inputs with different provenance; "
                                 "give each host or shard its own --run-dir")
            hosts[run_id] = prov
    return dict(sorted(hosts.items()))


def _earlier_conflicts(docs: Sequence[dict[str, Any]]) -> dict[tuple[str, str], list[dict[str, str]]]:
    """Disagreements recorded when an input was itself merged, so merging again does not forget them."""
    found: dict[tuple[str, str], list[dict[str, str]]] = {}
    for d in docs:
        for c in ((d["provenance"].get("merge") or {}).get("conflicts") or []):
            found.setdefault((c["scenario"], c["runtime"]), []).extend(c["observed"])
    return found


def _started(hosts: dict[str, dict[str, Any]], run_id: str) -> str:
    return str((hosts.get(run_id) or {}).get("started") or "")


def stack_name(doc: dict[str, Any]) -> str | None:
    """The stack a (single-run) document observed; None for a merge or a run that predates stacks."""
    return ((doc.get("provenance") or {}).get("stack") or {}).get("name")


def _qualified(doc: dict[str, Any], stack: str) -> dict[str, Any]:
    """The document with each runtime named runtime@stack: runs on different stacks are different columns, not
    conflicting observations of one cell."""
    def q(name: str) -> str:
        return name if "@" in name else f"{name}@{stack}"

    prov = dict(doc["provenance"])
    prov["runtimes"] = {q(k): v for k, v in (prov.get("runtimes") or {}).items()}
    return {**doc, "runtimes": [q(r) for r in doc["runtimes"]], "provenance": prov,
            "cells": [{**c, "runtime": q(c["runtime"])} for c in doc["cells"]]}


def merge(docs: Sequence[dict[str, Any]], run_id: str | None = None, prefer: str = WORSE) -> dict[str, Any]:
    """`prefer`: WORSE (hosts or shards of one matrix) or LATEST (re-runs of a cell: the newest start wins).
    Runs on more than one stack keep a column per runtime and stack (runtime@stack)."""
    if prefer not in (WORSE, LATEST):
        raise MergeError(f"unknown preference {prefer!r}; use {WORSE} or {LATEST}")
    if not docs:
        raise MergeError("nothing to merge")
    stacks = {stack_name(d) for d in docs if not d.get("hosts")}
    # a matrix merged by stack already has a column per runtime and stack: a shard added to it needs its own
    by_stack = {s for d in docs if d.get("hosts") for s in (d["provenance"].get("stack_order") or [])}
    stack_order: list[str] = []
    if len(stacks | by_stack) > 1:
        if None in stacks:
            raise MergeError("some inputs name the stack they observed and some do not; re-run the older ones")
        from harness import stack_data

        known = list(stack_data.load())
        stack_order = sorted((s for s in stacks | by_stack if s),
                             key=lambda s: (known.index(s) if s in known else 99, s))
        docs = [_qualified(d, stack_name(d) or "") if not d.get("hosts") else d for d in docs]
    docs = sorted(docs, key=lambda d: d["run_id"])
    baselines = sorted({d["baseline"] for d in docs})
    if len(baselines) > 1:
        raise MergeError(f"the inputs use different baselines ({', '.join(baselines)}); their cells do not compare")
    hosts = _provenances(docs)

    seen: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for d in docs:
        for cell in d["cells"]:
            seen.setdefault((cell["scenario"], cell["runtime"]), []).append(
                {**cell, "run_id": cell.get("run_id") or d["run_id"]})

    earlier = _earlier_conflicts(docs)
    cells, conflicts = [], []
    for key in sorted(seen):
        candidates = seen[key]
        if prefer == LATEST:
            kept = max(candidates, key=lambda c: (_started(hosts, c["run_id"]), c["run_id"]))
        else:
            kept = max(candidates, key=lambda c: badness(c["outcome"]))  # max keeps the first of equals
        cells.append(kept)
        observed = {o["run_id"]: o["outcome"] for o in earlier.get(key, [])}
        observed.update({c["run_id"]: c["outcome"] for c in candidates})
        if len(set(observed.values())) > 1:
            conflicts.append({
                "scenario": key[0], "runtime": key[1],
                "kept": {"run_id": kept["run_id"], "outcome": kept["outcome"]},
                "observed": [{"run_id": r, "outcome": o} for r, o in sorted(observed.items())],
            })

    runtimes = list(dict.fromkeys(r for d in docs for r in d["runtimes"]))
    runtime_info: dict[str, Any] = {}
    for prov in hosts.values():
        for name, info in (prov.get("runtimes") or {}).items():
            runtime_info.setdefault(name, info)
    started = sorted(str(p.get("started")) for p in hosts.values() if p.get("started"))
    finished = sorted(str(p.get("finished")) for p in hosts.values() if p.get("finished"))
    commits = sorted({str((p.get("suite") or {}).get("commit")) for p in hosts.values()
                      if (p.get("suite") or {}).get("commit")})
    merged = {
        "schema_version": 1,
        "run_id": run_id or _run_id(docs),
        "baseline": baselines[0],
        "runtimes": runtimes,
        "provenance": {
            "host": {"hostnames": sorted({str((p.get("host") or {}).get("hostname")) for p in hosts.values()})},
            "docker": {},
            "runtimes": runtime_info,
            "suite": {"commits": commits, "dirty": any((p.get("suite") or {}).get("dirty") for p in hosts.values())},
            "started": started[0] if started else "",
            "finished": finished[-1] if finished and len(finished) == len(hosts) else None,
            "merge": {"inputs": sorted(hosts), "rule": RULES[prefer], "conflicts": conflicts,
                      **({"by_stack": True} if stack_order else {})},
            **({"stack_order": stack_order} if stack_order else {}),
        },
        "hosts": hosts,
        "cells": cells,
    }
    schema.validate("results", merged)
    return merged
