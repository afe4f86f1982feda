"""pytest wiring only: command-line options and fixtures. The logic lives in harness/."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from harness.session import Options, Session


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("vmparity")
    g.addoption("--runtime", action="append", default=[], metavar="NAME",
                help="runtime under test (repeatable; default: every runtime the Docker daemon reports)")
    g.addoption("--baseline", default="runc", help="the reference runtime (default: runc)")
    g.addoption("--run-dir", type=Path, default=None, help="where results.json and evidence go "
                "(default: reports/runs/<run-id>)")
    g.addoption("--repeat", type=int, default=1, help="run every cell N times; disagreement is `flaky`")
    g.addoption("--examples", type=int, default=4, help="hypothesis examples per parameterised scenario")
    g.addoption("--slow-examples", type=int, default=2, help="the same for slow runtimes (--slow)")
    g.addoption("--slow", action="append", default=None, metavar="NAME",
                help="a runtime that gets the small example budget (default: those runtimes/*.yaml call slow)")
    g.addoption("--profile", choices=["fast", "deep"], default="fast",
                help="deep: many more hypothesis examples, for nightly runs")
    g.addoption("--stack", default=None, metavar="NAME",
                help="the Docker stack to observe (stacks/*.yaml; default: the host's own dockerd)")


def _options(config: pytest.Config) -> Options:
    return Options(
        baseline=config.getoption("--baseline"), runtimes=config.getoption("--runtime"),
        run_dir=config.getoption("--run-dir"), repeat=max(1, config.getoption("--repeat")),
        examples=config.getoption("--examples"), slow_examples=config.getoption("--slow-examples"),
        slow=tuple(config.getoption("--slow")) if config.getoption("--slow") else None,
        profile=config.getoption("--profile"), stack=config.getoption("--stack"),
    )


def _session(config: pytest.Config) -> Session:
    session = getattr(config, "_vmparity_session", None)
    if session is None:
        try:
            session = Session(_options(config))
        except ValueError as e:  # an unknown runtime name: say which exist
            raise pytest.UsageError(str(e)) from e
        config._vmparity_session = session  # type: ignore[attr-defined]
    return session


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if getattr(metafunc.function, "scenario", None) is not None:
        targets = _session(metafunc.config).targets
        metafunc.parametrize("target", targets, ids=targets)


@pytest.fixture(scope="session")
def vmp_session(request: pytest.FixtureRequest) -> Session:
    return _session(request.config)


@pytest.fixture(scope="session")
def cell_runner(vmp_session: Session) -> Any:
    from harness.cells import CellRunner

    return CellRunner(vmp_session)


@pytest.fixture(scope="session")
def docker_client() -> Any:
    from harness.setup.dockerd import client

    c = client(timeout=180)
    try:
        c.ping()
    except Exception as e:
        pytest.exit(f"the Docker daemon is not reachable ({e}); run scripts/setup-host first", returncode=3)
    return c


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    s: Session | None = getattr(session.config, "_vmparity_session", None)
    if s is not None:
        s.finish()


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    s: Session | None = getattr(config, "_vmparity_session", None)
    if s is None:
        return
    tr = terminalreporter
    tr.section("vmparity matrix")
    cells = s.store.doc["cells"]
    for runtime in s.targets:
        counts = Counter(c["outcome"] for c in cells if c["runtime"] == runtime)
        tr.write_line(f"{runtime:>10}: " + " | ".join(f"{n} {o}" for o, n in sorted(counts.items())))
    off = [v for v in s.verdicts if v[4] != "expected"]
    for scenario_id, runtime, observed, expected, verdict in off:
        tr.write_line(f"  {verdict}: {scenario_id} under {runtime}: observed {observed}, expected {expected}")
    if s.leftovers:
        tr.write_line(f"removed at start, left by earlier runs: {len(s.leftovers)}")
        for line in s.leftovers:
            tr.write_line(f"  {line}")
    tr.write_line(f"results: {s.store.path}")
