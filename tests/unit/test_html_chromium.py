"""reports/matrix.html in real headless Chromium: the table renders, the script runs, filters and the evidence
panel work from the URL fragment, and the screenshot shows the outcome colours (decoded with stdlib zlib)."""

from __future__ import annotations

import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import quote

import pytest

from harness import matrix
from harness.outcomes import Outcome
from harness.render import html
from tests.unit import png, synthetic

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
OVERRIDES = {("resources/shm-size", "runvm"): "differs", ("runtime_commands/ps", "runsc"): "error",
             ("networking/net-host", "runsc"): "host-impact", ("runtime_commands/exec", "runvm"): "refused"}


def chromium(profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    if CHROMIUM is None:
        pytest.skip("chromium is not installed")
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--hide-scrollbars", f"--user-data-dir={profile}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True)


class Dom(HTMLParser):
    """The parts of the dumped DOM the tests look at."""

    def __init__(self) -> None:
        super().__init__()
        self.body: dict[str, str] = {}
        self.rows: list[dict[str, str]] = []
        self.cells: list[dict[str, str]] = []
        self.aside: dict[str, str] | None = None
        self.shown = ""
        self.detail_text = ""
        self._where: str | None = None
        self._depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "body":
            self.body = a
        elif tag == "tr" and "data-scenario" in a:
            self.rows.append(a)
        elif tag == "td" and "cell" in a.get("class", "").split():
            self.cells.append(a)
        elif tag == "aside" and a.get("id") == "detail":
            self.aside = a
            self._where, self._depth = "detail", 0
        elif tag == "output" and a.get("id") == "shown":
            self._where = "shown"
        if self._where == "detail":
            self._depth += 1

    def handle_endtag(self, tag: str) -> None:
        if self._where == "shown" and tag == "output":
            self._where = None
        if self._where == "detail":
            self._depth -= 1
            if tag == "aside":
                self._where = None

    def handle_data(self, data: str) -> None:
        if self._where == "shown":
            self.shown += data
        elif self._where == "detail":
            self.detail_text += data + "\n"


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("html") / "matrix.html"
    out.write_text(html.render(matrix.build(synthetic.registry(), synthetic.results(OVERRIDES))))
    return out


def dump(page: Path, profile: Path, fragment: str = "") -> Dom:
    dom = Dom()
    dom.feed(chromium(profile, "--dump-dom", page.as_uri() + fragment).stdout)
    return dom


def test_table_renders_and_the_script_runs(page: Path, tmp_path: Path) -> None:
    dom = dump(page, tmp_path / "profile")
    assert dom.body.get("data-ready") == "1"
    assert len(dom.rows) == 5
    assert len(dom.cells) == 5 * 4
    assert not any("hidden" in r for r in dom.rows) and not any("hidden" in c for c in dom.cells)
    assert dom.shown == "showing 5 of 5 scenarios, 4 of 4 runtimes"
    assert dom.aside is not None and "hidden" in dom.aside


def test_filters_and_evidence_from_the_fragment(page: Path, tmp_path: Path) -> None:
    fragment = "#runtimes=runc,runvm&sections=pending&cell=" + quote("resources/shm-size@runvm", safe="")
    dom = dump(page, tmp_path / "profile", fragment)
    visible_rows = [r["data-scenario"] for r in dom.rows if "hidden" not in r]
    assert visible_rows == ["runtime_commands/ps", "resources/shm-size"]
    visible_runtimes = sorted({c["data-runtime"] for c in dom.cells if "hidden" not in c})
    assert visible_runtimes == ["runc", "runvm"]
    assert dom.shown == "showing 2 of 5 scenarios, 2 of 4 runtimes"
    assert dom.aside is not None and "hidden" not in dom.aside
    assert "size_mib: runc 128 · runvm 64" in dom.detail_text
    assert "regression" in dom.detail_text
    selected = [c["data-cell"] for c in dom.cells if "selected" in c["class"].split()]
    assert selected == ["resources/shm-size@runvm"]


def test_only_disagreements_filter(page: Path, tmp_path: Path) -> None:
    dom = dump(page, tmp_path / "profile", "#only=1")
    visible_rows = [r["data-scenario"] for r in dom.rows if "hidden" not in r]
    assert visible_rows == ["runtime_commands/ps", "resources/shm-size", "networking/net-host",
                            "runtime_commands/exec"]


def test_screenshot_shows_the_outcome_colours(page: Path, tmp_path: Path) -> None:
    shot = tmp_path / "matrix.png"
    chromium(tmp_path / "profile", f"--screenshot={shot}", "--window-size=1280,1100", page.as_uri())
    found = png.colours(shot)
    total = sum(found.values())
    assert total == 1280 * 1100
    common = [c for c, n in found.items() if n > total * 0.002]
    assert len(common) >= 6, f"a nearly blank page: {common}"

    def present(hex_colour: str) -> bool:
        want = tuple(int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))
        return any(n > 200 and all(abs(a - b) <= 4 for a, b in zip(c, want, strict=True))
                   for c, n in found.items())

    for outcome in (Outcome.SAME, Outcome.DIFFERS, Outcome.REFUSED, Outcome.HOST_IMPACT, Outcome.ERROR,
                    Outcome.BASELINE_UNAVAILABLE, Outcome.NOT_RUN):
        assert present(html.COLOURS[outcome][0]), f"no {outcome} cell colour in the screenshot"
