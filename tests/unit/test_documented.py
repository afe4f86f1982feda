"""The documented-behaviour verdict: named checks over an observation, judged both ways by the gate."""

from __future__ import annotations

from harness.documented import Check, combine, judge_example
from harness.outcomes import Documented, Verdict, documented_verdict

CHECKS = (Check("every capability is effective", lambda o: o["caps"] == "all"),
          Check("mounting works", lambda o: o["mount"]))


def test_all_checks_holding_meets() -> None:
    j = judge_example(CHECKS, {"caps": "all", "mount": True}, None, None, None)
    assert j.verdict == Documented.MEETS and j.failed == ()


def test_failed_checks_are_named() -> None:
    j = judge_example(CHECKS, {"caps": "some", "mount": True}, None, None, None)
    assert j.verdict == Documented.FAILS and j.failed == ("every capability is effective",)


def test_a_missing_field_fails_the_check_and_says_why() -> None:
    j = judge_example(CHECKS, {"caps": "all"}, None, None, None)
    assert j.verdict == Documented.FAILS and "mounting works (the observation cannot tell" in j.failed[0]


def test_refusing_or_hanging_is_not_what_docker_documents() -> None:
    assert judge_example(CHECKS, None, "OCI runtime create failed", None, None).verdict == Documented.FAILS
    assert judge_example(CHECKS, None, None, "no answer within 150s", None).verdict == Documented.FAILS


def test_a_suite_failure_or_no_checks_is_unjudged() -> None:
    assert judge_example(CHECKS, None, None, None, "Traceback").verdict == Documented.UNJUDGED
    assert judge_example((), {"caps": "all"}, None, None, None).verdict == Documented.UNJUDGED


def test_combining_examples() -> None:
    meets = judge_example(CHECKS, {"caps": "all", "mount": True}, None, None, None)
    fails = judge_example(CHECKS, {"caps": "all", "mount": False}, None, None, None)
    assert combine([]) is None
    assert combine([meets, meets]).verdict == Documented.MEETS  # type: ignore[union-attr]
    both = combine([meets, fails])
    assert both is not None and both.verdict == Documented.FAILS and both.failed == ("mounting works",)


def test_the_gate_judges_the_documented_verdict_both_ways() -> None:
    assert documented_verdict(Documented.MEETS, Documented.MEETS) == Verdict.EXPECTED
    assert documented_verdict(Documented.FAILS, Documented.MEETS) == Verdict.REGRESSION
    assert documented_verdict(Documented.MEETS, Documented.FAILS) == Verdict.UNEXPECTED_PASS
    assert documented_verdict(Documented.UNJUDGED, Documented.FAILS) == Verdict.REGRESSION
    assert documented_verdict(Documented.MEETS, None) == Verdict.NO_EXPECTATION
