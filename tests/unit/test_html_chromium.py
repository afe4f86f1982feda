"""reports/matrix.html in real headless Chromium: the table renders, the script runs, filters and the evidence
panel work from the URL fragment, and the screenshot (decoded with stdlib zlib) shows every outcome's colour and a
distinct, drawn icon: the page must read without an emoji font, which setup-host's Chromium does not have."""

from __future__ import annotations

import itertools
import json
import math
import shutil
import subprocess
from collections import Counter
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import quote

import pytest

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
    out.write_text(html.render(synthetic.build(synthetic.registry(), synthetic.results(OVERRIDES))))
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


WINDOW = (1280, 1100)
PROBE = """<script>
(function () {
  // Test-only: where each outcome icon was laid out, so the screenshot's pixels can be checked badge by badge.
  var out = [];
  document.querySelectorAll("#legend .sym, td.cell .sym").forEach(function (sym) {
    var box = sym.closest("td.cell") || sym.closest("#legend li > span");
    var words = box.textContent.trim().split(/\\s+/);
    var i = sym.getBoundingClientRect(), b = box.getBoundingClientRect();
    out.push({where: box.tagName === "TD" ? "cell" : "legend",
              outcome: box.getAttribute("data-outcome") || words[words.length - 1],
              opacity: parseFloat(getComputedStyle(box).opacity),
              icon: [i.left, i.top, i.right, i.bottom], box: [b.left, b.top, b.right, b.bottom]});
  });
  document.body.setAttribute("data-probe", JSON.stringify({width: innerWidth, badges: out}));
})();
</script>
"""


OUTCOME_VALUES = {o.value for o in Outcome}


@dataclass(frozen=True)
class Placed:
    """One outcome icon as laid out in the page: which outcome, where, and the pixels of its box."""

    where: str
    outcome: Outcome
    opacity: float
    icon: tuple[int, int, int, int]
    box: tuple[int, int, int, int]


@dataclass(frozen=True)
class Shot:
    width: int
    height: int
    rows: list[bytes]
    placed: list[Placed]

    def pixels(self, area: tuple[int, int, int, int]) -> list[list[tuple[int, int, int]]]:
        x0, y0, x1, y1 = area
        return [[(r[3 * x], r[3 * x + 1], r[3 * x + 2]) for x in range(x0, x1)] for r in self.rows[y0:y1]]


def _pixel_box(rect: list[float]) -> tuple[int, int, int, int]:
    return math.floor(rect[0]), math.floor(rect[1]), math.ceil(rect[2]), math.ceil(rect[3])


def screenshot(page: Path, profile: Path) -> Shot:
    """A screenshot of `page`, and where the page laid out each outcome icon (a second run, same width)."""
    probed = page.with_name(page.stem + "-probed.html")
    probed.write_text(page.read_text().replace("</body>", PROBE + "</body>"))
    size = f"--window-size={WINDOW[0]},{WINDOW[1]}"
    dom = Dom()
    dom.feed(chromium(profile, size, "--dump-dom", probed.as_uri()).stdout)
    probe = json.loads(dom.body["data-probe"])
    shot = profile.parent / (page.stem + ".png")
    chromium(profile, f"--screenshot={shot}", size, probed.as_uri())
    width, height, rows = png.read(shot)
    assert (width, height) == WINDOW and probe["width"] == width, "the two runs laid the page out differently"
    placed = [Placed(b["where"], Outcome(b["outcome"]), b["opacity"], _pixel_box(b["icon"]), _pixel_box(b["box"]))
              for b in probe["badges"] if b["outcome"] in OUTCOME_VALUES]  # documented badges are checked apart
    in_view = [p for p in placed if p.box[0] >= 0 and p.box[1] >= 0 and p.box[2] <= width and p.box[3] <= height]
    return Shot(width, height, rows, in_view)


@pytest.fixture(scope="module")
def shot(page: Path, tmp_path_factory: pytest.TempPathFactory) -> Shot:
    return screenshot(page, tmp_path_factory.mktemp("shot") / "profile")


def _hex(colour: str) -> tuple[int, int, int]:
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)


def _seen(colour: str, opacity: float = 1.0) -> tuple[int, int, int]:
    """A colour as drawn at `opacity` over the page's white paper."""
    r, g, b = _hex(colour)
    return (round(r * opacity + 255 * (1 - opacity)), round(g * opacity + 255 * (1 - opacity)),
            round(b * opacity + 255 * (1 - opacity)))


def _distance(a: tuple[int, int, int], b: tuple[int, int, int]) -> int:
    return sum(abs(x - y) for x, y in zip(a, b, strict=True))


def ink(shot: Shot, p: Placed) -> list[tuple[int, int]]:
    """The icon's drawn pixels: those nearer the badge's text colour than its background, relative to the icon's
    ink bounding box (so the same shape drawn at two places compares equal)."""
    badge = html.badge(p.outcome)
    bg, fg = _seen(badge.bg, p.opacity), _seen(badge.fg, p.opacity)
    cut = _distance(bg, fg) * 0.4
    dots = [(x, y) for y, row in enumerate(shot.pixels(p.icon)) for x, px in enumerate(row) if _distance(px, bg) > cut]
    if not dots:
        return []
    left, top = min(x for x, _ in dots), min(y for _, y in dots)
    return sorted((x - left, y - top) for x, y in dots)


def alike(a: list[tuple[int, int]], b: list[tuple[int, int]]) -> bool:
    """The same shape, allowing for anti-aliasing: at most a fifth of the drawn pixels differ."""
    sa, sb = set(a), set(b)
    return len(sa ^ sb) <= 0.2 * len(sa | sb)


def check_badges(shot: Shot) -> None:
    """Every outcome reads in the screenshot: its badge has its colour, its icon is drawn, and no two outcomes'
    icons are the same shape (a missing glyph draws every emoji as one empty box)."""
    cells = [p for p in shot.placed if p.where == "cell"]
    legend = [p for p in shot.placed if p.where == "legend"]
    assert cells, "no outcome icons in the matrix"
    for group in (cells, legend):
        shapes: dict[Outcome, list[tuple[int, int]]] = {}
        for p in group:
            badge = html.badge(p.outcome)
            box = shot.pixels((p.box[0] + 4, p.box[1] + 4, p.box[2] - 4, p.box[3] - 4))
            bg = _seen(badge.bg, p.opacity)
            filled = sum(_distance(px, bg) <= 12 for row in box for px in row) / sum(len(row) for row in box)
            assert filled > 0.4, f"the {p.where} badge of {p.outcome} at {p.box} is not {badge.bg} ({filled:.0%})"
            drawn = ink(shot, p)
            area = (p.icon[2] - p.icon[0]) * (p.icon[3] - p.icon[1])
            assert len(drawn) >= 0.1 * area, f"the {p.where} icon of {p.outcome} at {p.icon} is (nearly) blank"
            shapes.setdefault(p.outcome, drawn)
        same = [(a, b) for a, b in itertools.combinations(shapes, 2) if alike(shapes[a], shapes[b])]
        assert not same, f"outcomes whose {group[0].where} icons look the same: {same}"
    assert sorted(p.outcome for p in legend) == sorted(Outcome), "the legend lacks an outcome's icon"


def test_screenshot_every_outcome_badge_reads(shot: Shot) -> None:
    assert len([p for p in shot.placed if p.where == "cell"]) == 5 * 4, "a cell outside the screenshot"
    check_badges(shot)


def test_screenshot_shows_the_outcome_colours(shot: Shot) -> None:
    found: Counter[tuple[int, int, int]] = Counter(px for row in shot.pixels((0, 0, shot.width, shot.height))
                                                   for px in row)
    total = sum(found.values())
    common = [c for c, n in found.items() if n > total * 0.002]
    assert len(common) >= 6, f"a nearly blank page: {common}"

    def present(hex_colour: str) -> bool:
        want = _hex(hex_colour)
        return any(n > 200 and all(abs(a - b) <= 4 for a, b in zip(c, want, strict=True))
                   for c, n in found.items())

    for outcome in Outcome:
        assert present(html.badge(outcome).bg), f"no {outcome} colour in the screenshot"
