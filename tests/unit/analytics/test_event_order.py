"""One referral's events from two services, intake and routing, each in its own order but not in
order with each other: a broker that lost its log gets every service's outbox again (one service's
after another's), and intake's consumer may read routing's decision only after a later move of its
own. The measures follow intake's record of the referral whatever the order they are folded in."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from signpost.analytics.projections.facts import AWAITING_ROUTING, apply_event, fact_id, new_fact, unmatched
from signpost.shared.events import Envelope, EventData
from signpost.shared.lifecycle import ReferralStatus
from signpost.shared.mongo import Document
from signpost.shared.vocabulary import DeclineReason, EscalationReason, NeedCode, Sector

from tests.analytics_events import T0, TENANT, service_orders, withdrawn
from tests.unit.analytics.test_measure_definitions import DAY, SEMH, SPLD, Referral, made
from tests.unit.analytics.test_projections import fold, indexed, total

NO_CAPACITY = DeclineReason.NO_CAPACITY
Lifecycle = Callable[[], list[Envelope[EventData]]]


def answers(events: list[Envelope[EventData]]) -> list[object]:
    """Every figure the index gives (the referral, by sector, by provision) and what the fact says
    of intake's record: unmatched, and which declined offers still await routing's answer."""
    facts = fold(events)
    index = indexed(facts)
    fact = facts[fact_id(TENANT, "r1")]
    awaiting = sorted(p for p, offer in fact["offers"].items() if offer.get(AWAITING_ROUTING, False))
    return [
        total(index, None),
        index.breakdown(tenant=TENANT, days=None, where=[], group_by="sector"),
        index.breakdown(tenant=TENANT, days=None, where=[], group_by="provision"),
        unmatched(fact),
        awaiting,
    ]


def rerouted_decline() -> list[Envelope[EventData]]:
    """A of a package of two declined and re-routed to C; B and C then complete."""
    r, a, b, c = Referral(), made("a"), made("b"), made("c", sector=Sector.EDUCATION)
    return [
        r.submit(),
        r.routed(at=T0, offers=[a, b]),
        r.declined(a, at=T0 + DAY, reason=NO_CAPACITY),
        r.rerouted(a, at=T0 + DAY, offers=[c]),
        *r.done(b, at=T0 + 5 * DAY),
        *r.done(c, at=T0 + 9 * DAY),
    ]


def decline_left_unmet() -> list[Envelope[EventData]]:
    """B declined and nothing replaces it (SPLD unmet); A, still live, completes: not unmatched."""
    r, a, b = Referral(), made("a", SEMH), made("b", SPLD)
    return [
        r.submit(SEMH, SPLD),
        r.routed(at=T0, offers=[a, b]),
        r.declined(b, at=T0 + DAY, reason=NO_CAPACITY),
        r.not_rerouted(b, at=T0 + DAY),
        *r.done(a, at=T0 + 5 * DAY),
    ]


def every_offer_declined() -> list[Envelope[EventData]]:
    """The only offer declined and nothing replaces it: unmatched, as intake records it."""
    r, a = Referral(), made("a")
    return [
        r.submit(),
        r.routed(at=T0, offers=[a]),
        r.declined(a, at=T0 + DAY, reason=NO_CAPACITY),
        r.not_rerouted(a, at=T0 + DAY),
    ]


def both_declined_one_rerouted() -> list[Envelope[EventData]]:
    """A and B both declined; A's answer (nothing) comes while B still awaits routing, which then
    re-routes B to C: intake held the referral declined, then routed; never unmatched."""
    r, a, b, c = Referral(), made("a"), made("b"), made("c")
    return [
        r.submit(),
        r.routed(at=T0, offers=[a, b]),
        r.declined(a, at=T0 + DAY, reason=NO_CAPACITY),
        r.declined(b, at=T0 + DAY, reason=NO_CAPACITY),
        r.not_rerouted(a, at=T0 + 2 * DAY),
        r.rerouted(b, at=T0 + 2 * DAY, offers=[c]),
        r.accepted(c, at=T0 + 3 * DAY),
    ]


def withdrawn_before_routed() -> list[Envelope[EventData]]:
    """Routing's offer is on the log first, but intake withdrew the referral before reading it."""
    r = Referral()
    return [
        r.submit(),
        r.routed(at=T0, offers=[made("a")]),
        withdrawn(r, at=T0, withdrawn_from=ReferralStatus.SUBMITTED),
    ]


def withdrawn_before_unmatched() -> list[Envelope[EventData]]:
    r = Referral()
    return [
        r.submit(),
        r.unmatched(at=T0, unmet_needs=[SEMH], locality="Ashley"),
        withdrawn(r, at=T0, withdrawn_from=ReferralStatus.SUBMITTED),
    ]


def withdrawn_before_escalated() -> list[Envelope[EventData]]:
    r = Referral()
    return [
        r.submit(),
        r.escalated(at=T0, reason=EscalationReason.EHC_ASSESSMENT, locality="Ashley", setting_id="URN1"),
        withdrawn(r, at=T0, withdrawn_from=ReferralStatus.SUBMITTED),
    ]


# What intake records of each, folded in the order things happened.
RECORDED: dict[Lifecycle, dict[str, int]] = {
    rerouted_decline: {"routed": 1, "declined": 1, "accepted": 1, "completed": 1},
    decline_left_unmet: {"routed": 1, "declined": 1, "accepted": 1, "completed": 1, "unmet_SPLD": 1},
    every_offer_declined: {"routed": 1, "declined": 1, "unmatched": 1, "unmet_SEMH": 1},
    both_declined_one_rerouted: {"routed": 1, "declined": 1, "accepted": 1, "unmet_SEMH": 1},
    withdrawn_before_routed: {"submitted": 1, "withdrawn": 1},
    withdrawn_before_unmatched: {"submitted": 1, "withdrawn": 1},
    withdrawn_before_escalated: {"submitted": 1, "withdrawn": 1},
}
COUNTED = (
    "routed",
    "declined",
    "accepted",
    "completed",
    "unmatched",
    "withdrawn",
    "escalated",
    "unmet_SPLD",
    "unmet_SEMH",
)


@pytest.mark.parametrize("lifecycle", list(RECORDED), ids=lambda built: built.__name__)
def test_one_referrals_events_in_any_order_of_its_services_give_the_same_measures(
    lifecycle: Lifecycle,
) -> None:
    """Every order that keeps intake's events in their order and routing's in theirs."""
    events = lifecycle()
    in_order = total(indexed(fold(events)), None)
    recorded = RECORDED[lifecycle]
    expected_counts = {name: recorded.get(name, 0) for name in COUNTED}
    assert {name: in_order.get(name, 0) for name in COUNTED} == expected_counts
    expected = answers(events)
    assert expected[4] == []  # no decline left waiting for an answer that came
    orders = list(service_orders(events))
    assert len(orders) > 1
    differing = [[type(e.data).__name__ for e in order] for order in orders if answers(order) != expected]
    assert not differing, f"{len(differing)} of {len(orders)} orders differ, e.g. {differing[0]}"


def test_a_decision_folded_after_a_withdrawal_from_submitted_counts_nowhere() -> None:
    r = Referral()
    events = [
        r.submit(),
        withdrawn(r, at=T0, withdrawn_from=ReferralStatus.SUBMITTED),
        r.routed(at=T0, offers=[made("a")]),
    ]
    assert total(indexed(fold(events))) == {"submitted": 1, "withdrawn": 1}


@pytest.mark.parametrize("withdrawn_from", [None, ReferralStatus.ROUTED])
def test_a_withdrawal_not_from_submitted_keeps_the_offers_made_before_it(
    withdrawn_from: ReferralStatus | None,
) -> None:
    """Withdrawn once routed, or by an event from before `withdrawn_from` (not known): as before."""
    r = Referral()
    events = [
        r.submit(),
        r.routed(at=T0, offers=[made("a")]),
        withdrawn(r, at=T0 + DAY, withdrawn_from=withdrawn_from),
    ]
    counted = total(indexed(fold(events)))
    assert (counted["routed"], counted["withdrawn"]) == (1, 1)


def test_a_decline_folded_after_routings_answer_awaits_nothing() -> None:
    r, a, b = Referral(), made("a"), made("b")
    events = [
        r.submit(),
        r.routed(at=T0, offers=[a, b]),
        r.not_rerouted(a, at=T0 + DAY, unmet=[]),
        r.declined(a, at=T0 + DAY, reason=NO_CAPACITY),
    ]
    fact = fold(events)[fact_id(TENANT, "r1")]
    assert AWAITING_ROUTING not in fact["offers"]["a"] and not unmatched(fact)


def test_a_fact_from_before_unmatched_was_worked_out_whole_counts_as_it_did() -> None:
    """The previous release stored `unmatched` as it worked it out when each answer came; such a fact
    counts that until a rebuild, and a new event folded into it keeps it."""
    r, a = Referral(), made("a")
    stored = fold([r.submit(), r.routed(at=T0, offers=[a]), r.declined(a, at=T0 + DAY, reason=NO_CAPACITY)])[
        fact_id(TENANT, "r1")
    ]
    previous: Document = {k: v for k, v in stored.items() if k != "found_nothing"}
    assert set(new_fact(TENANT, "r1")) - set(previous) == {"found_nothing"}
    counted_then = {**previous, "unmatched": True}
    assert unmatched(counted_then) and total(indexed({"f": counted_then}))["unmatched"] == 1
    assert not unmatched({**previous, "unmatched": False})
    later = apply_event(counted_then, r.accepted(a, at=T0 + 2 * DAY))
    assert later is not None and unmatched(later) and later["unmatched"] is True
    assert "found_nothing" in later


def test_a_first_decision_that_found_nothing_stays_unmatched() -> None:
    r = Referral()
    events = [r.submit(SEMH), r.unmatched(at=T0, unmet_needs=[NeedCode.SEMH], locality="Ashley")]
    fact = fold(events)[fact_id(TENANT, "r1")]
    assert unmatched(fact) and fact["unmatched"] is True
