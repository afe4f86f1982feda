"""reports/matrix.html without a browser: self-contained, one row per scenario, data safely embedded."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

import pytest

from harness import outcomes
from harness.outcomes import SYMBOLS, Outcome
from harness.render import html
from tests.unit import synthetic


class Cells(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.rows: list[str] = []
        self.cells: list[dict[str, str]] = []
        self.external: list[str] = []
        self.island = ""
        self._in_island = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "tr" and "data-scenario" in a:
            self.rows.append(a["data-scenario"])
        if tag == "td" and "cell" in a.get("class", "").split():
            self.cells.append(a)
        if tag in ("link", "img", "iframe") or (tag == "script" and "src" in a):
            self.external.append(tag)
        self._in_island = tag == "script" and a.get("id") == "cells"

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_island = False

    def handle_data(self, data: str) -> None:
        if self._in_island:
            self.island += data


def parse(doc: dict | None = None) -> tuple[str, Cells]:
    text = html.render(synthetic.build(synthetic.registry(), doc or synthetic.results()))
    p = Cells()
    p.feed(text)
    return text, p


def test_one_row_per_scenario_one_cell_per_runtime() -> None:
    _, p = parse()
    assert len(p.rows) == 5 and len(p.cells) == 5 * 4
    kata = [c for c in p.cells if c["data-runtime"] == "kata"]
    assert {c["data-outcome"] for c in kata} == {"not-run"} and all("absent" in c["class"] for c in kata)


def test_self_contained() -> None:
    text, p = parse()
    assert p.external == []  # no <link>, <img>, <iframe> or <script src>
    style = text[text.index("<style>"):text.index("</style>")]
    assert "url(" not in style and "@import" not in style
    assert "fetch(" not in text and "XMLHttpRequest" not in text


def test_evidence_island_survives_hostile_text() -> None:
    doc = synthetic.results({("runtime_commands/exec", "runvm"): "refused"})
    cell = next(c for c in doc["cells"] if (c["scenario"], c["runtime"]) == ("runtime_commands/exec", "runvm"))
    cell["examples"][0]["target"]["refusal"] = "</script><script>alert(1)</script> & <!--"
    text, p = parse(doc)
    assert text.count("<script") == 2
    data = json.loads(p.island)
    line = data["runtime_commands/exec@runvm"]["examples"][0]["lines"][0]
    assert line == "refused: runc — · runvm </script><script>alert(1)</script> & <!--"


def test_tooltip_has_the_evidence() -> None:
    _, p = parse(synthetic.results({("resources/shm-size", "runvm"): "differs"}))
    cell = next(c for c in p.cells if c["data-cell"] == "resources/shm-size@runvm")
    assert "v-regression" in cell["class"]
    assert cell["title"].splitlines()[:3] == ["runvm: differs (expected same: the agent mounts it with the size)",
                                              "regression", "size_mib: runc 128 · runvm 64"]


def test_deterministic() -> None:
    doc = synthetic.results()
    assert parse(doc)[0] == parse(doc)[0]


DOCUMENTED: list[str] = [d.value for d in getattr(outcomes, "Documented", ())]
"""harness.outcomes.Documented's values, once it is there (it is being added beside this renderer)."""


def test_every_outcome_and_documented_result_has_its_own_badge() -> None:
    assert [o for o in Outcome if o not in html.BADGES] == [], "an outcome without an HTML badge"
    assert [d for d in DOCUMENTED if d not in html.DOCUMENTED_BADGES] == [], "a documented result without a badge"
    badges = [*html.BADGES.values(), *html.DOCUMENTED_BADGES.values()]
    assert len({b.icon for b in badges}) == len(badges), "two values share an icon"
    assert len({b.bg for b in html.BADGES.values()}) == len(html.BADGES), "two outcomes share a colour"
    for b in badges:
        svg = ET.fromstring(f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16">{b.icon}</svg>')
        assert len(svg), "an empty icon"
        assert all(re.fullmatch(r"#[0-9a-f]{6}", c) for c in (b.bg, b.fg))


def test_a_value_without_a_badge_still_renders(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(html.BADGES, Outcome.FLAKY)
    assert html.badge(Outcome.FLAKY) is html.UNKNOWN
    text, _ = parse(synthetic.results({("runtime_commands/exec", "runvm"): "flaky"}))
    assert ".o-flaky { background: #ffffff;" in text


def test_the_page_needs_no_emoji_font() -> None:
    """The HTML draws outcomes as inline SVG icons; SYMBOLS' emoji stay in the Markdown only."""
    text, p = parse(synthetic.results({("runtime_commands/exec", "runvm"): "refused"}))
    emoji = {ch for s in SYMBOLS.values() for ch in s}
    assert not emoji & set(text), "an emoji in the page"
    symbols = set(re.findall(r'<symbol id="([^"]+)"', text))
    used = set(re.findall(r'<use href="#([^"]+)"', text))
    assert used <= symbols
    assert {f"i-o-{o.value}" for o in Outcome} | {f"i-d-{d}" for d in html.DOCUMENTED_BADGES} <= symbols
    assert all(f'<use href="#i-o-{o.value}"/></svg> {o.value}</span>' in text for o in Outcome), "legend badges"
    island = json.loads(p.island)["runtime_commands/exec@runvm"]
    assert island["cls"] == "o-refused" and "symbol" not in island
