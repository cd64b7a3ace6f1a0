"""The fault matrix's own checks, without a cluster: what they must catch."""

from __future__ import annotations

from typing import Any

from tests.faults.harness import counting_problems

SUBMITTED = {"r1": "e1", "r2": "e2", "r3": "e3"}
DECISIONS = {"r1": {"d1"}, "r2": {"d2"}, "r3": {"d3"}}


def fact(referral_id: str, *events: str, submitted: bool = True) -> dict[str, Any]:
    return {
        "referral_id": referral_id,
        "events": list(events),
        "submitted": {"at": "x"} if submitted else None,
    }


def test_each_referral_counted_once_passes() -> None:
    facts = [fact("r1", "e1", "d1"), fact("r2", "d2", "e2"), fact("r3", "e3", "d3")]
    assert counting_problems(SUBMITTED, facts, DECISIONS) == []


def test_one_counted_twice_and_one_missed_do_not_cancel_out() -> None:
    # Three facts for three referrals: the totals agree, which is all the matrix compared before.
    facts = [fact("r1", "e1", "d1"), fact("r2", "e2", "d2"), fact("r2", "e2", "d2")]
    assert len(facts) == len(SUBMITTED)
    assert counting_problems(SUBMITTED, facts, DECISIONS) == ["r2 counted 2 times", "r3 not counted"]


def test_an_unknown_referral_counted_in_place_of_a_stored_one() -> None:
    facts = [fact("r1", "e1", "d1"), fact("r2", "e2", "d2"), fact("stranger", "e9", "d9")]
    assert counting_problems(SUBMITTED, facts, DECISIONS) == [
        "stranger counted but never stored",
        "r3 not counted",
    ]


def test_a_fact_without_its_submission_or_with_two_decisions() -> None:
    decisions = {**DECISIONS, "r3": {"d3", "d3bis"}}
    facts = [
        fact("r1", "d1", submitted=False),
        fact("r2", "e2", "d2", "d2"),
        fact("r3", "e3", "d3", "d3bis"),
    ]
    assert counting_problems(SUBMITTED, facts, decisions) == [
        "r1 not counted as submitted",
        "r2 has an event folded in twice",
        "r3 has 2 decisions counted",
    ]
