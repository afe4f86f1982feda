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


def test_the_registry_states_each_scenarios_documented_checks_as_the_oracle_does() -> None:
    import importlib
    import pkgutil

    import tests.networking
    import tests.resources
    import tests.runtime_commands
    from harness.scenario import SCENARIOS

    for pkg in (tests.runtime_commands, tests.networking, tests.resources):
        for mod in pkgutil.iter_modules(pkg.__path__):
            if mod.name.startswith("test_"):
                importlib.import_module(f"{pkg.__name__}.{mod.name}")
    reg = registry.load()
    for sid, spec in SCENARIOS.items():
        if sid not in reg.scenarios:
            continue
        assert [c.name for c in spec.documented] == list(reg.scenario(sid).get("documented") or []), sid


def test_a_containerd_2_stack_cannot_restore_and_containerd_1_can() -> None:
    from pathlib import Path

    from harness.stacks import Endpoint

    def stack(containerd: str) -> Endpoint:
        return Endpoint("s", "unix:///x", Path("/run/x"), None, "host", versions={"containerd": containerd})

    assert "containerd/containerd/issues/12141" in (hostlacks.restore_loses_the_task_pid(stack("2.1.9+unknown")) or "")
    assert hostlacks.restore_loses_the_task_pid(stack("1.6.20~ds1")) is None
    assert hostlacks.restore_loses_the_task_pid(None) is None
