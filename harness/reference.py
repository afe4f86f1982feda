"""What makes a run fit to be the committed reference: every registered scenario observed at one clean commit,
by one finished run per stack. docs/limitations.md claims to describe the code at that commit; a merge of hosts
or re-runs, a dirty tree or a HEAD that moved during a run would make that claim false. Runs on different stacks
joined by `vmparity merge` are one matrix with a column per runtime and stack, and are fine when each run is."""

from __future__ import annotations

from typing import Any


def _run_problems(prov: dict[str, Any], label: str) -> list[str]:
    suite = prov.get("suite") or {}
    found: list[str] = []
    if suite.get("dirty"):
        found.append(f"{label}the suite had uncommitted changes when it started")
    if not prov.get("finished"):
        found.append(f"{label}the run did not finish")
    after = prov.get("suite_at_finish")
    if after is None:
        if prov.get("finished"):
            found.append(f"{label}the run did not record the suite's commit at its end")
    else:
        if suite.get("commit") and after.get("commit") != suite["commit"]:
            found.append(f"{label}HEAD moved during the run ({_short(suite.get('commit'))} at the start, "
                         f"{_short(after.get('commit'))} at the end)")
        if after.get("dirty") and not suite.get("dirty"):
            found.append(f"{label}the suite's tree changed during the run")
    return found


def problems(doc: dict[str, Any], registered: set[str] | None = None) -> list[str]:
    """Each reason the document is not one clean matrix, in words a reader of the document understands."""
    prov = doc.get("provenance") or {}
    hosts = doc.get("hosts") or {}
    found: list[str] = []
    if hosts:
        stacks = [((p.get("stack") or {}).get("name")) for p in hosts.values()]
        by_stack = bool((prov.get("merge") or {}).get("by_stack"))
        if not by_stack or len(set(stacks)) != len(stacks):
            found.append(f"it merges several runs of one stack ({', '.join(sorted(hosts))})")
        commits = {str((p.get("suite") or {}).get("commit")) for p in hosts.values()}
        if len(commits) > 1:
            found.append(f"its runs were made at different suite commits ({', '.join(sorted(commits))})")
        for run_id, p in sorted(hosts.items()):
            found += _run_problems(p, f"run {run_id}: ")
    else:
        if prov.get("merge"):
            found.append(f"it is a merge ({doc.get('run_id')})")
        listed: list[str] = (prov.get("suite") or {}).get("commits") or []
        if len(set(listed)) > 1:
            found.append(f"it spans suite commits {', '.join(listed)}")
        found += _run_problems(prov, "")
    if registered is not None:
        ran = {c["scenario"] for c in doc.get("cells") or [] if c.get("outcome") != "not-run"}
        missing = sorted(registered - ran)
        if missing:
            shown = ", ".join(missing[:8]) + (f" and {len(missing) - 8} more" if len(missing) > 8 else "")
            found.append(f"{len(missing)} registered scenario{'s' if len(missing) != 1 else ''} did not run: {shown}")
    return found


def _short(commit: Any) -> str:
    return str(commit)[:12] if commit else "unknown"
