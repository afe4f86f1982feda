"""The committed docs/limitations.md is what the registry and the committed reference run render to."""

from __future__ import annotations

import copy

import pytest

from harness import cli, matrix, paths, registry
from harness.render import html, markdown
from tests.unit import synthetic


def test_the_real_registry_renders() -> None:
    doc = {"schema_version": 1, "run_id": "empty", "baseline": "runc", "runtimes": ["runc"],
           "provenance": copy.deepcopy(synthetic.PROVENANCE), "cells": []}
    m = matrix.build(registry.load(), doc)
    text = markdown.render(m)
    assert all(f'<a id="{s.anchor}"></a>' in text for s in m.scenarios)
    assert html.render(m).count('class="cell ') == len(m.scenarios) * len(m.runtimes)


def test_limitations_md_is_current() -> None:
    if not cli.DEFAULT_RESULTS.exists():
        pytest.skip(f"no reference run committed yet ({cli.DEFAULT_RESULTS.relative_to(paths.REPO)}); "
                    "`vmparity reference RUN_DIR && vmparity render` creates it")
    assert cli.main(["render", "--check"]) == 0, (
        "docs/limitations.md is stale or was edited by hand: run `vmparity render`")
