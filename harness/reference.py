"""What makes a run fit to be the committed reference: one finished run of every registered scenario, at one
clean commit. docs/limitations.md claims to describe the code at that commit; a merge, a dirty tree or a HEAD
that moved during the run would make that claim false."""

from __future__ import annotations

from typing import Any


def problems(doc: dict[str, Any], registered: set[str] | None = None) -> list[str]:
    """Each reason the run is not one clean run, in words a reader of the document understands."""
    prov = doc.get("provenance") or {}
    suite = prov.get("suite") or {}
    found: list[str] = []
    if prov.get("merge") or doc.get("hosts"):
        found.append(f"it merges several runs ({', '.join(sorted(doc.get('hosts') or {})) or doc.get('run_id')})")
    if suite.get("commits"):
        found.append(f"it spans suite commits {', '.join(suite['commits'])}")
    if suite.get("dirty"):
        found.append("the suite had uncommitted changes when it started")
    if not prov.get("finished"):
        found.append("the run did not finish")
    after = prov.get("suite_at_finish")
    if after is None:
        if prov.get("finished"):
            found.append("the run did not record the suite's commit at its end")
    else:
        if suite.get("commit") and after.get("commit") != suite["commit"]:
            found.append(f"HEAD moved during the run ({_short(suite.get('commit'))} at the start, "
                         f"{_short(after.get('commit'))} at the end)")
        if after.get("dirty") and not suite.get("dirty"):
            found.append("the suite's tree changed during the run")
    if registered is not None:
        ran = {c["scenario"] for c in doc.get("cells") or [] if c.get("outcome") != "not-run"}
        missing = sorted(registered - ran)
        if missing:
            shown = ", ".join(missing[:8]) + (f" and {len(missing) - 8} more" if len(missing) > 8 else "")
            found.append(f"{len(missing)} registered scenario{'s' if len(missing) != 1 else ''} did not run: {shown}")
    return found


def _short(commit: Any) -> str:
    return str(commit)[:12] if commit else "unknown"
