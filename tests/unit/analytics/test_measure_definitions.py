"""What each measure counts, as README's Analytics section defines it, in the lifecycles the
domain audit found miscounted: decisions intake refused, acceptances of different offers,
needs partly met, baselines moved after completion, leap years, offers completed together."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from signpost.analytics.projections.counters import measures, rereferrals
from signpost.analytics.projections.facts import AWAITING_ROUTING, apply_event, fact_id
from signpost.analytics.pulse import service
from signpost.shared.events import Envelope, EventData, Offer, ReferralRoutedV1, ReferralUnmatchedV1
from signpost.shared.mongo import Document
from signpost.shared.vocabulary import (
    DeclineReason,
    EscalationReason,
    NeedCode,
    Outcome,
    Sector,
    WithdrawReason,
)

from signpost.platform.lifecycles import ReferralEvents, offer
from tests.analytics_events import SCI, T0, TENANT
from tests.unit.analytics.test_projections import MARCH, fold, indexed, total
from tests.unit.analytics.test_pulse_service import pulse_query

DAY = timedelta(days=1)
SEMH, SPLD = NeedCode.SEMH, NeedCode.SPLD


class Referral(ReferralEvents):
    def __init__(self, referral_id: str = "r1") -> None:
        super().__init__(referral_id, tenant=TENANT, source="tests")

    def submit(self, *needs: NeedCode) -> Envelope[EventData]:
        return self.submitted(
            at=T0, needs=needs or (SEMH,), locality="Ashley", setting_id="URN1", needs_profile={SCI: 3}
        )

    def rerouted(self, declined: Offer, *, at: datetime, offers: list[Offer]) -> Envelope[EventData]:
        return self.envelope(
            ReferralRoutedV1(
                referral_id=self.referral_id,
                offers=offers,
                routed_at=at,
                replaces_provision_id=declined.provision_id,
            )
        )

    def partly_routed(
        self, *, at: datetime, offers: list[Offer], unmet: list[NeedCode]
    ) -> Envelope[EventData]:
        return self.envelope(
            ReferralRoutedV1(referral_id=self.referral_id, offers=offers, routed_at=at, unmet_needs=unmet)
        )

    def not_rerouted(
        self, declined: Offer, *, at: datetime, unmet: list[NeedCode] | None = None
    ) -> Envelope[EventData]:
        """Routing's answer to a decline: no replacement, these needs (the offer's) unmet."""
        return self.envelope(
            ReferralUnmatchedV1(
                referral_id=self.referral_id,
                unmet_needs=declined.needs_met if unmet is None else unmet,
                locality="Ashley",
                reason="declined; no other provision",
                decided_at=at,
                declined_provision_id=declined.provision_id,
            )
        )

    def done(
        self, made: Offer, *, at: datetime, outcome: Outcome = Outcome.NEEDS_MET, after: int = 1
    ) -> list[Envelope[EventData]]:
        """Accepted two days and started a day before it completes."""
        return [
            self.accepted(made, at=at - 2 * DAY),
            self.started(made, at=at - DAY),
            self.completed(made, at=at, outcome=outcome, needs_profile_after={SCI: after}),
        ]


def made(provision: str, *needs: NeedCode, sector: Sector = Sector.HEALTH) -> Offer:
    return offer(provision, sector=sector, needs_met=needs or (SEMH,), organisation_id=f"org-{provision}")


def by(group_by: str, events: list[Envelope[EventData]]) -> dict[str, dict[str, int]]:
    return indexed(fold(events)).breakdown(tenant=TENANT, days=MARCH, where=[], group_by=group_by)


# 1. A routing decision for a referral already closed changes nothing, as in intake.


def test_a_decision_after_withdrawal_offers_nothing() -> None:
    r, a = Referral(), made("a")
    events = [
        r.submit(),
        r.withdrawn(at=T0 + DAY, reason=WithdrawReason.OTHER),
        r.routed(at=T0 + 2 * DAY, offers=[a]),
        r.escalated(
            at=T0 + 2 * DAY, reason=EscalationReason.EHC_ASSESSMENT, locality="Ashley", setting_id="URN1"
        ),
    ]
    assert total(indexed(fold(events))) == {"submitted": 1, "withdrawn": 1}
    assert by("provision", events) == by("sector", events) == {}


def test_a_reroute_after_withdrawal_offers_nothing() -> None:
    r, a, c = Referral(), made("a"), made("c", sector=Sector.EDUCATION)
    events = [
        r.submit(),
        r.routed(at=T0 + DAY, offers=[a]),
        r.declined(a, at=T0 + 2 * DAY, reason=DeclineReason.NO_CAPACITY),
        r.withdrawn(at=T0 + 3 * DAY, reason=WithdrawReason.OTHER),
        r.rerouted(a, at=T0 + 4 * DAY, offers=[c]),
    ]
    assert set(by("provision", events)) == {"a"} and set(by("sector", events)) == {"health"}
    assert total(indexed(fold(events)))["route_minutes"] == 1440


def test_a_declined_offer_keeps_the_referral_open_for_routings_answer_as_intake_does() -> None:
    r, a, b, c = Referral(), made("a"), made("b"), made("c")
    declined_last = [
        r.submit(),
        r.routed(at=T0, offers=[a, b]),
        *r.done(a, at=T0 + 5 * DAY),
        r.declined(b, at=T0 + 6 * DAY, reason=DeclineReason.NO_CAPACITY),
    ]
    rerouted = r.rerouted(b, at=T0 + 6 * DAY, offers=[c])
    assert set(by("provision", [*declined_last, rerouted])) == {"a", "b", "c"}
    # Declined under the previous release, which kept no wait: answered, as intake reads its own.
    stored = fold(declined_last)[fact_id(TENANT, "r1")]
    answered = {k: v for k, v in stored["offers"]["b"].items() if k != AWAITING_ROUTING}
    previous = {**stored, "offers": {**stored["offers"], "b": answered}}
    assert apply_event(previous, rerouted) == {**previous, "events": [*previous["events"], rerouted.id]}


# 2. Days to accept: from the offer first accepted to its acceptance.


def test_days_to_accept_pairs_an_acceptance_with_its_own_offer() -> None:
    r, a, b, c = Referral(), made("a"), made("b"), made("c")
    events = [
        r.submit(),
        r.routed(at=T0, offers=[a, b]),
        r.declined(b, at=T0 + DAY, reason=DeclineReason.NO_CAPACITY),
        r.rerouted(b, at=T0 + 5 * DAY, offers=[c]),
        r.accepted(c, at=T0 + 6 * DAY),
        r.accepted(a, at=T0 + 10 * DAY),
    ]
    counted = total(indexed(fold(events)))
    assert (counted["accept_minutes"], counted["accept_n"]) == (1440, 1)
    assert by("provision", events)["a"]["accept_minutes"] == 10 * 1440


# 3. Unmet demand counts the needs left unmet, not every need of a referral partly unmet.


async def unmet(events: list[Envelope[EventData]]) -> dict[str, tuple[object, dict[str, object]]]:
    answer = await service.unmet_demand(pulse_query(events, protect=False))
    return {
        need.need: (need.unmatched.value, {place: n.value for place, n in need.by_locality.items()})
        for need in answer.needs
    }


async def test_unmet_demand_counts_only_the_needs_a_declined_offer_left_unmet() -> None:
    r, a, b = Referral(), made("a", SEMH), made("b", SPLD)
    events = [
        r.submit(SEMH, SPLD),
        r.routed(at=T0, offers=[a, b]),
        r.declined(b, at=T0 + DAY, reason=DeclineReason.NO_CAPACITY),
        r.not_rerouted(b, at=T0 + DAY),
        r.accepted(a, at=T0 + 2 * DAY),
    ]
    assert await unmet(events) == {"SEMH": (0, {}), "SPLD": (1, {"Ashley": 1})}


def test_a_referral_is_unmatched_only_once_no_offer_is_left_as_intake_records_it() -> None:
    r, a, b = Referral(), made("a", SEMH), made("b", SEMH)
    routed = [
        r.submit(),
        r.routed(at=T0, offers=[a, b]),
        r.declined(b, at=T0 + DAY, reason=DeclineReason.NO_CAPACITY),
    ]
    covered = r.not_rerouted(b, at=T0 + DAY, unmet=[])  # a still meets every need b was to
    assert "unmatched" not in total(indexed(fold([*routed, covered])))
    refused = [
        r.declined(a, at=T0 + 2 * DAY, reason=DeclineReason.NO_CAPACITY),
        r.not_rerouted(a, at=T0 + 2 * DAY),
    ]
    assert total(indexed(fold([*routed, covered, *refused])))["unmatched"] == 1


async def test_unmet_demand_counts_the_needs_routing_routed_around() -> None:
    r, a = Referral(), made("a", SEMH)
    events = [r.submit(SEMH, SPLD), r.partly_routed(at=T0, offers=[a], unmet=[SPLD])]
    assert await unmet(events) == {"SEMH": (0, {}), "SPLD": (1, {"Ashley": 1})}
    assert "unmatched" not in total(indexed(fold(events)))  # routed, not a referral no provision could meet


def test_a_fact_from_before_unmet_needs_were_kept_counts_every_need_as_it_did() -> None:
    r = Referral()
    fact = fold([r.submit(SEMH, SPLD), r.unmatched(at=T0, unmet_needs=[SEMH, SPLD], locality="Ashley")])
    stored = fact[fact_id(TENANT, "r1")]
    previous: Document = {k: v for k, v in stored.items() if k != "unmet_needs"}
    assert measures(previous, {}) == measures(stored, {})
    assert measures(previous, {})["unmet_SPLD"] == measures(previous, {})["unmet_SEMH"] == 1


# 4. Needs change: from the referral as last updated when the offer completed.


def test_information_added_after_an_offer_completed_leaves_its_needs_change() -> None:
    r, a, b = Referral(), made("a"), made("b")
    events = [r.submit(), r.routed(at=T0, offers=[a, b]), *r.done(a, at=T0 + 10 * DAY), r.accepted(b, at=T0)]
    before = total(indexed(fold(events)))
    later = r.information_added(at=T0 + 11 * DAY, needs_profile={SCI: 4})
    after = total(indexed(fold([*events, later])))
    assert before["needs_change_sum"] == after["needs_change_sum"] == 2  # 3 when it completed, then 1
    updated_first = [*events[:2], later, *events[2:]]
    assert total(indexed(fold(updated_first)))["needs_change_sum"] == 3  # 4 as last updated, then 1


def test_an_offer_completed_under_the_previous_release_is_measured_from_the_referral_as_it_did() -> None:
    r, a = Referral(), made("a")
    completed = [r.submit(), r.routed(at=T0, offers=[a]), *r.done(a, at=T0 + 5 * DAY)]
    later = r.information_added(at=T0 + 6 * DAY, needs_profile={SCI: 4})
    stored = fold([*completed, later])[fact_id(TENANT, "r1")]
    previous = {
        **stored,
        "offers": {"a": {k: v for k, v in stored["offers"]["a"].items() if k != "profile_before"}},
    }
    assert measures(stored, stored["offers"])["needs_change_sum"] == 2  # 3 when it completed, then 1
    assert measures(previous, previous["offers"])["needs_change_sum"] == 3  # 4 as last updated, then 1


# 5. Re-referral: within the 12 calendar months before.


@pytest.mark.parametrize(
    ("earlier", "later", "flagged"),
    [
        (datetime(2023, 3, 4, 12, 0), datetime(2024, 3, 4, 10, 0), True),  # 366 days in a leap year
        (datetime(2023, 3, 4, 10, 0), datetime(2024, 3, 4, 10, 0), True),  # twelve months to the minute
        (datetime(2023, 3, 4, 9, 59), datetime(2024, 3, 4, 10, 0), False),
        (datetime(2024, 3, 4, 10, 0), datetime(2025, 3, 4, 10, 1), False),
        (datetime(2023, 2, 28, 10, 0), datetime(2024, 2, 29, 10, 0), True),  # no 29th the year before
        (datetime(2023, 2, 27, 10, 0), datetime(2024, 2, 29, 10, 0), False),
    ],
)
def test_rereferral_is_within_twelve_calendar_months(
    earlier: datetime, later: datetime, flagged: bool
) -> None:
    flags = rereferrals([(earlier.replace(tzinfo=UTC), "a"), (later.replace(tzinfo=UTC), "b")])
    assert flags == {"a": False, "b": flagged}


# 6. Completions, outcomes and re-scores are counted per referral in every grouping.


def test_outcomes_add_up_to_completed_referrals_in_every_grouping() -> None:
    r, a, b = Referral(), made("a"), made("b")
    events = [
        r.submit(),
        r.routed(at=T0, offers=[a, b]),
        *r.done(a, at=T0 + 10 * DAY, outcome=Outcome.NEEDS_MET, after=1),
        *r.done(b, at=T0 + 20 * DAY, outcome=Outcome.PARTLY_MET, after=2),
    ]
    last = {"completed": 1, "outcome_needs_partly_met": 1, "needs_change_sum": 1, "needs_change_n": 1}
    for counted in (total(indexed(fold(events))), by("sector", events)["health"]):
        assert {k: v for k, v in counted.items() if k in {*last, "outcome_needs_met"}} == last
    assert by("provision", events)["a"]["outcome_needs_met"] == 1  # each provision: its own completion
