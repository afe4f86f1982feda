"""Every baseline-unavailable reason the registry declares has a probe, and every probe answers."""

from __future__ import annotations

from harness import hostlacks, registry


def test_every_declared_reason_has_a_probe() -> None:
    reg = registry.load()
    declared = {r["id"] for s in reg.raw["scenarios"] for r in s.get("unavailable_when") or ()}
    assert declared, "no scenario declares a reason: the registry lost its unavailable_when entries"
    assert declared <= set(hostlacks.PROBES), sorted(declared - set(hostlacks.PROBES))


def test_probes_answer_none_or_a_sentence() -> None:
    for rid in hostlacks.PROBES:
        answer = hostlacks.lacking(rid)
        assert answer is None or (isinstance(answer, str) and answer)
