"""A pytest plugin that shows a run as a rich progress bar, one step per finished cell.

It replaces pytest's own terminal reporter (whose per-test lines would tear a live display) and reports
what matters instead: collection errors, failed tests with their short message, and each cell's outcome as
recorded in results.json. `vmparity run --plain` keeps pytest's reporter and skips this plugin.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


class CellProgress:
    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)
        self.progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), TextColumn("{task.fields[last]}"), console=self.console,
                                 transient=False)
        self.task: Any = None
        self.cells: dict[str, tuple[str, str]] = {}
        """nodeid -> (scenario id, target runtime), for the tests that are cells."""
        self.outcomes: Counter[str] = Counter()
        self.finished = 0
        self.failures: list[str] = []
        self.collection_errors: list[str] = []
        self._config: pytest.Config | None = None

    @pytest.hookimpl(trylast=True)
    def pytest_configure(self, config: pytest.Config) -> None:
        self._config = config
        reporter = config.pluginmanager.getplugin("terminalreporter")
        if reporter is not None:
            config.pluginmanager.unregister(reporter)

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self.collection_errors.append(f"{report.nodeid or 'collection'}: {report.longreprtext}")
            self.console.print(f"[red]collection error[/red] {report.nodeid}\n{report.longreprtext}")

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        for item in session.items:
            spec = getattr(getattr(item, "function", None), "scenario", None)
            callspec = getattr(item, "callspec", None)
            if spec is not None and callspec is not None and "target" in callspec.params:
                self.cells[item.nodeid] = (spec.id, str(callspec.params["target"]))
        self.progress.start()
        self.task = self.progress.add_task("cells", total=len(session.items), last="")

    def _outcome(self, nodeid: str) -> str | None:
        """The cell's outcome as results.json recorded it (the session object lives on the config)."""
        session = getattr(self._config, "_vmparity_session", None)
        if nodeid not in self.cells or session is None:
            return None
        scenario, runtime = self.cells[nodeid]
        for cell in session.store.doc["cells"]:
            if (cell["scenario"], cell["runtime"]) == (scenario, runtime):
                return str(cell["outcome"])
        return None

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.failed:
            self.failures.append(f"{report.nodeid} ({report.when}): {_short(report)}")
            self.progress.console.print(f"[red]failed[/red] {report.nodeid} ({report.when})\n{report.longreprtext}")

    def pytest_runtest_logfinish(self, nodeid: str, location: tuple[str, int | None, str]) -> None:
        self.finished += 1
        outcome = self._outcome(nodeid)
        if outcome is not None:
            self.outcomes[outcome] += 1
        scenario, runtime = self.cells.get(nodeid, (nodeid, ""))
        last = f"{scenario} @ {runtime}: {outcome}" if outcome else nodeid
        if self.task is not None:
            self.progress.update(self.task, advance=1, last=last,
                                 description=" ".join(f"{n} {o}" for o, n in sorted(self.outcomes.items()))
                                 or "cells")

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if self.task is not None:
            self.progress.stop()

    def pytest_internalerror(self, excrepr: Any, excinfo: Any) -> None:
        self.progress.stop()
        self.console.print(f"[red]internal error[/red]\n{excrepr}")


def _short(report: pytest.TestReport) -> str:
    """The exception line of a failure (pytest's crash summary), else the first line of its text."""
    crash = getattr(report.longrepr, "reprcrash", None)
    if crash is not None:
        return str(crash.message).splitlines()[0]
    lines = report.longreprtext.strip().splitlines()
    return lines[0] if lines else "failed"
