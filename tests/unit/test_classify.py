"""The outcome rules, table by table, and the properties that must hold whatever the observations."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.classify import Observed, classify, combine_attempts, combine_examples
from harness.outcomes import Outcome, Verdict, verdict

OK = Observed(observation={"size_mib": 128})
OTHER = Observed(observation={"size_mib": 64})
REFUSED = Observed(refusal="OCI runtime create failed")
UNAVAILABLE = Observed(refusal="OCI runtime create failed", unavailable="no-resctrl: the kernel has no resctrl")
UNAVAILABLE_OBS = Observed(observation={"rdt": False}, unavailable="no-resctrl: the kernel has no resctrl")
HUNG = Observed(timed_out="docker start: no answer within 150s")
ERROR = Observed(error="Traceback ...")
IMPACT = Observed(observation={"size_mib": 128}, host_changes=("added: link tap0",))
LEAK = Observed(error="Traceback ...", host_changes=("left behind: process 42 (qemu) still in the cgroup",))

json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                           lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=5), kids,
                                                                                    max_size=3), max_leaves=8)
observations = st.dictionaries(st.text(max_size=8), json_values, max_size=4)


@pytest.mark.parametrize(("baseline", "target", "expected"), [
    (OK, OK, Outcome.SAME),
    (OK, OTHER, Outcome.DIFFERS),
    (OK, REFUSED, Outcome.REFUSED),
    (UNAVAILABLE, OK, Outcome.BASELINE_UNAVAILABLE),
    (UNAVAILABLE, REFUSED, Outcome.BASELINE_UNAVAILABLE),
    (UNAVAILABLE_OBS, OK, Outcome.BASELINE_UNAVAILABLE),
    (REFUSED, OK, Outcome.ERROR),  # runc refused for no declared reason: the suite's problem
    (REFUSED, REFUSED, Outcome.ERROR),
    (ERROR, OK, Outcome.ERROR),
    (OK, ERROR, Outcome.ERROR),
    (OK, HUNG, Outcome.TIMED_OUT),
    (HUNG, OK, Outcome.ERROR),  # runc hanging says nothing about the target
    (OK, IMPACT, Outcome.HOST_IMPACT),
    (IMPACT, IMPACT, Outcome.SAME),
    (UNAVAILABLE, IMPACT, Outcome.HOST_IMPACT),
    (OK, LEAK, Outcome.HOST_IMPACT),  # what a failing target left behind still counts
    (ERROR, LEAK, Outcome.HOST_IMPACT),
])
def test_table(baseline: Observed, target: Observed, expected: Outcome) -> None:
    assert classify(baseline, target) == expected


def test_normaliser_decides_equality() -> None:
    drop_ids = lambda o: {k: v for k, v in o.items() if k != "id"}  # noqa: E731
    a, b = Observed(observation={"id": 1, "v": 2}), Observed(observation={"id": 9, "v": 2})
    assert classify(a, b) == Outcome.DIFFERS
    assert classify(a, b, drop_ids) == Outcome.SAME


@given(observations)
def test_a_run_compared_with_itself_is_same(obs: dict) -> None:
    assert classify(Observed(observation=obs), Observed(observation=obs)) == Outcome.SAME


@given(st.text(min_size=1), observations | st.none(), st.text(min_size=1) | st.none())
def test_a_baseline_failure_is_never_the_targets_limitation(refusal: str, obs: dict | None,
                                                            target_refusal: str | None) -> None:
    target = Observed(observation=obs if target_refusal is None else None, refusal=target_refusal)
    if target.observation is None and target.refusal is None:
        target = Observed(observation={})
    assert classify(Observed(refusal=refusal), target) not in (Outcome.REFUSED, Outcome.DIFFERS, Outcome.SAME)
    assert classify(Observed(refusal=refusal, unavailable="x: y"), target) == Outcome.BASELINE_UNAVAILABLE


@given(observations, observations)
def test_a_suite_failure_is_never_a_result(a: dict, b: dict) -> None:
    assert classify(Observed(error="boom"), Observed(observation=b)) == Outcome.ERROR
    assert classify(Observed(observation=a), Observed(error="boom")) == Outcome.ERROR


@given(st.lists(st.sampled_from(list(Outcome)), min_size=1, max_size=6))
def test_combining_examples_keeps_the_worst(outcomes: list[Outcome]) -> None:
    combined = combine_examples(outcomes)
    if Outcome.HOST_IMPACT in outcomes:
        assert combined == Outcome.HOST_IMPACT
    elif Outcome.ERROR in outcomes:
        assert combined == Outcome.ERROR
    elif all(o == Outcome.SAME for o in outcomes):
        assert combined == Outcome.SAME
    elif Outcome.FLAKY in outcomes:
        assert combined == Outcome.FLAKY
    elif Outcome.TIMED_OUT in outcomes:
        assert combined == Outcome.TIMED_OUT
    elif Outcome.REFUSED in outcomes:
        assert combined == Outcome.REFUSED


def test_baseline_unavailable_examples_are_set_aside() -> None:
    assert combine_examples([Outcome.BASELINE_UNAVAILABLE, Outcome.SAME]) == Outcome.SAME
    assert combine_examples([Outcome.BASELINE_UNAVAILABLE]) == Outcome.BASELINE_UNAVAILABLE
    assert combine_examples([]) == Outcome.ERROR


def test_disagreeing_attempts_are_flaky() -> None:
    assert combine_attempts([(Outcome.SAME, {"a": 1}), (Outcome.SAME, {"a": 1})]) == Outcome.SAME
    assert combine_attempts([(Outcome.SAME, {"a": 1}), (Outcome.DIFFERS, {"a": 2})]) == Outcome.FLAKY
    assert combine_attempts([(Outcome.DIFFERS, {"a": 2}), (Outcome.DIFFERS, {"a": 3})]) == Outcome.FLAKY
    assert combine_attempts([(Outcome.SAME, {}), (Outcome.ERROR, None)]) == Outcome.ERROR
    assert combine_attempts([(Outcome.ERROR, None), (Outcome.HOST_IMPACT, {})]) == Outcome.HOST_IMPACT
    assert combine_attempts([(Outcome.SAME, {}), (Outcome.TIMED_OUT, "hung")]) == Outcome.FLAKY


@pytest.mark.parametrize(("observed", "expected", "result"), [
    (Outcome.SAME, Outcome.SAME, Verdict.EXPECTED),
    (Outcome.REFUSED, Outcome.SAME, Verdict.REGRESSION),
    (Outcome.SAME, Outcome.REFUSED, Verdict.UNEXPECTED_PASS),
    (Outcome.DIFFERS, Outcome.REFUSED, Verdict.UNEXPECTED_PASS),
    (Outcome.HOST_IMPACT, Outcome.DIFFERS, Verdict.REGRESSION),
    (Outcome.TIMED_OUT, Outcome.REFUSED, Verdict.REGRESSION),
    (Outcome.REFUSED, Outcome.TIMED_OUT, Verdict.UNEXPECTED_PASS),
    (Outcome.ERROR, Outcome.SAME, Verdict.REGRESSION),
    (Outcome.BASELINE_UNAVAILABLE, Outcome.SAME, Verdict.CHANGED),
    (Outcome.SAME, None, Verdict.NO_EXPECTATION),
])
def test_verdicts(observed: Outcome, expected: Outcome | None, result: Verdict) -> None:
    assert verdict(observed, expected) == result


def test_a_tolerated_outcome_is_expected_and_named_in_the_registry() -> None:
    from harness.registry import Expectation

    exp = Expectation(Outcome.SAME, "a race in the runtime", tolerate=(Outcome.DIFFERS,))
    assert exp.judge(Outcome.SAME) == Verdict.EXPECTED
    assert exp.judge(Outcome.DIFFERS) == Verdict.EXPECTED
    assert exp.judge(Outcome.REFUSED) == Verdict.REGRESSION
