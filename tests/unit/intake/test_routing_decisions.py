"""What a routing decision changes on intake's referral, decided without the database."""

from __future__ import annotations

from datetime import UTC, datetime

from signpost.intake.referrals.service import routing_decision_change
from signpost.shared.events import Envelope, EventData, Offer, ReferralRoutedV1, new_event
from signpost.shared.vocabulary import NeedCode, Sector

TENANT = "E06000023"
AT = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def reroute(referral_id: str) -> ReferralRoutedV1:
    offer = Offer(
        provision_id="p-2",
        provision_name="Speech and language therapy",
        organisation="NHS Trust",
        organisation_id="org-2",
        sector=Sector.HEALTH,
        needs_met=[NeedCode.SLCN],
        explanation="Meets speech, language and communication needs.",
    )
    return ReferralRoutedV1(
        referral_id=referral_id, offers=[offer], routed_at=AT, replaces_provision_id="p-1"
    )


def unmatched_referral(**extra: object) -> dict[str, object]:
    declined = {"provision_id": "p-1", "status": "declined", "awaiting_routing": True}
    return {
        "_id": "r-1",
        "tenant": TENANT,
        "status": "unmatched",
        "offers": [declined],
        "unmet_needs": [],
        **extra,
    }


def test_a_re_route_of_an_unmatched_referral_offers_the_new_provision() -> None:
    event: Envelope[EventData] = new_event(
        reroute("r-1"), source="/signpost/routing", tenant=TENANT, subject="r-1"
    )
    change = routing_decision_change(envelope=event, referral=unmatched_referral())
    assert change is not None and change.changes["status"] == "routed"


def test_a_decision_reaching_an_erased_referral_is_ignored() -> None:
    """Its child's details are gone: offering it would send agencies a referral nobody can act on,
    and unsetting `erased_at` would make it look as if it had never been erased."""
    event: Envelope[EventData] = new_event(
        reroute("r-1"), source="/signpost/routing", tenant=TENANT, subject="r-1"
    )
    assert routing_decision_change(envelope=event, referral=unmatched_referral(erased_at=AT)) is None
