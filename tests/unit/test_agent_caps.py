"""Capability names to masks, and the order in which an OCI process's sets are applied (libc recorded)."""

from __future__ import annotations

from typing import Any

import pytest

from runtime.agent import caps, libc


def test_names_become_a_mask_and_unknown_ones_are_ignored() -> None:
    assert caps.mask(["CAP_CHOWN", "CAP_KILL", "CAP_FROM_THE_FUTURE"]) == (1 << 0) | (1 << 5)
    assert caps.mask(None) == 0
    assert caps.NUMBER["CAP_SYS_ADMIN"] == 21 and caps.NUMBER["CAP_CHECKPOINT_RESTORE"] == 40


def test_sets_then_ambient_and_the_bounding_set_drops_the_rest(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[Any, ...]] = []
    monkeypatch.setattr(libc, "capset", lambda *a: calls.append(("capset", *a)))
    def prctl(*a: int) -> int:
        calls.append(("prctl", *a))
        return 0

    monkeypatch.setattr(libc, "prctl", prctl)
    caps.apply({"effective": ["CAP_KILL"], "permitted": ["CAP_KILL", "CAP_CHOWN"], "inheritable": [],
                "ambient": ["CAP_KILL", "CAP_NOPE"]})
    assert calls == [("capset", 1 << 5, (1 << 5) | 1, 0),
                     ("prctl", libc.PR_CAP_AMBIENT, libc.PR_CAP_AMBIENT_CLEAR_ALL),
                     ("prctl", libc.PR_CAP_AMBIENT, libc.PR_CAP_AMBIENT_RAISE, 5)]
    calls.clear()
    monkeypatch.setattr(caps, "last_cap", lambda: 3)
    caps.drop_bounding(caps.mask(["CAP_CHOWN", "CAP_FOWNER"]))
    assert calls == [("prctl", libc.PR_CAPBSET_DROP, 1), ("prctl", libc.PR_CAPBSET_DROP, 2)]
