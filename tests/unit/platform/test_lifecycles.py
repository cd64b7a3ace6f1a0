"""The lifecycle builders the analytics tests and bench/analytics.py share: valid events of one referral."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from signpost.shared.events import (
    EVENT_TYPES,
    OfferAcceptedV1,
    OfferCompletedV1,
    OfferDeclinedV1,
    OfferStartedV1,
    ReferralSubmittedV1,
    from_kafka,
    to_kafka_headers,
    to_kafka_value,
)
from signpost.shared.vocabulary import (
    BroadArea,
    DeclineReason,
    EscalationReason,
    NeedCode,
    NeedsDomain,
    Outcome,
    Sector,
    WithdrawReason,
)

from signpost.platform.lifecycles import ReferralEvents, offer

AT = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def test_every_event_is_keyed_by_its_referral_and_survives_the_wire() -> None:
    referral = ReferralEvents("ref-1", tenant="E06000023", source="tests")
    made = offer("speech-therapy", sector=Sector.HEALTH, needs_met=[NeedCode.SLCN], organisation_id="nhs-slt")
    events = [
        referral.submitted(at=AT, needs=[NeedCode.SLCN, NeedCode.SEMH], locality="Ashley", setting_id="URN1"),
        referral.information_added(at=AT, needs_profile={NeedsDomain.COMMUNICATION_AND_INTERACTION: 4}),
        referral.escalated(at=AT, reason=EscalationReason.SAFEGUARDING, locality="Ashley", setting_id="URN1"),
        referral.unmatched(at=AT, unmet_needs=[NeedCode.SLCN], locality="Ashley"),
        referral.routed(at=AT, offers=[made]),
        referral.declined(made, at=AT, reason=DeclineReason.NO_CAPACITY),
        referral.accepted(made, at=AT),
        referral.started(made, at=AT),
        referral.completed(
            made, at=AT, outcome=Outcome.NEEDS_MET, needs_profile_after={NeedsDomain.FAMILY_AND_HOME: 1}
        ),
        referral.withdrawn(at=AT, reason=WithdrawReason.OTHER),
    ]
    built = {event.type for event in events}
    assert built == set(EVENT_TYPES) - {
        "uk.signpost.provision.changed.v1",
        "uk.signpost.setting.changed.v1",
    }, "one builder for every referral event type"
    for event in events:
        assert (event.subject, event.tenant, event.source) == ("ref-1", "E06000023", "tests")
        assert getattr(event.data, "referral_id", None) == "ref-1"
        wire = from_kafka(to_kafka_value(event), to_kafka_headers(event))
        assert wire.data == event.data


def test_submission_derives_its_broad_areas_and_moves_name_the_offer() -> None:
    referral = ReferralEvents("ref-2", tenant="E06000023", source="tests")
    submitted = referral.submitted(
        at=AT, needs=[NeedCode.SEMH, NeedCode.SLCN], locality="Ashley", setting_id="URN1"
    )
    assert isinstance(submitted.data, ReferralSubmittedV1)
    assert submitted.data.broad_areas == [
        BroadArea.COMMUNICATION_AND_INTERACTION,
        BroadArea.SOCIAL_EMOTIONAL_MENTAL_HEALTH,
    ]
    made = offer(
        "portage-home-visits", sector=Sector.EDUCATION, needs_met=[NeedCode.SLCN], organisation_id="la-eys"
    )
    assert (made.provision_name, made.organisation) == ("Portage Home Visits", "La Eys")
    later = AT + timedelta(days=3)
    for move in (
        referral.accepted(made, at=later),
        referral.started(made, at=later),
        referral.declined(made, at=later, reason=DeclineReason.NOT_ELIGIBLE),
        referral.completed(made, at=later, outcome=Outcome.NEEDS_MET, needs_profile_after={}),
    ):
        assert isinstance(move.data, OfferAcceptedV1 | OfferStartedV1 | OfferDeclinedV1 | OfferCompletedV1)
        assert (move.data.provision_id, move.data.organisation_id, move.data.at) == (
            "portage-home-visits",
            "la-eys",
            later,
        )
