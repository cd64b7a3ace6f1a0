"""Referral lifecycles as analytics sees them: the events of one referral from submission on."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Literal

from signpost.shared.events import (
    Envelope,
    EventData,
    Offer,
    OfferAcceptedV1,
    OfferCompletedV1,
    OfferDeclinedV1,
    OfferStartedV1,
    ReferralEscalatedV1,
    ReferralInformationAddedV1,
    ReferralRoutedV1,
    ReferralSubmittedV1,
    ReferralUnmatchedV1,
    ReferralWithdrawnV1,
    new_event,
)
from signpost.shared.vocabulary import (
    DeclineReason,
    EscalationReason,
    LevelOfNeed,
    NeedCode,
    NeedsDomain,
    Outcome,
    Sector,
    WithdrawReason,
    broad_areas,
)

TENANT = "E06000023"
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
Path = Literal[
    "completed", "started", "accepted", "routed", "declined", "unmatched", "escalated", "withdrawn"
]
SCI = NeedsDomain.COMMUNICATION_AND_INTERACTION


def lifecycle(
    referral_id: str,
    path: Path = "completed",
    *,
    tenant: str = TENANT,
    at: datetime = T0,
    locality: str = "Ashley",
    setting: str = "URN100001",
    needs: tuple[str, ...] = ("SLCN",),
    child_ref: str = "",
    provision: str = "speech-therapy",
    sector: Sector = Sector.HEALTH,
    profile_after: int = 1,
    escalation: EscalationReason = EscalationReason.SAFEGUARDING,
    decline: DeclineReason = DeclineReason.NO_CAPACITY,
    information: bool = False,
) -> list[Envelope[EventData]]:
    """Submitted, then as far along `path` as it says; one day between each move."""
    codes = [NeedCode(need) for need in needs]

    def event(data: EventData) -> Envelope[EventData]:
        return new_event(data, source="tests", tenant=tenant, subject=referral_id)

    events = [
        event(
            ReferralSubmittedV1(
                referral_id=referral_id,
                age_years=7,
                locality=locality,
                setting_id=setting,
                need_codes=codes,
                broad_areas=broad_areas(codes),
                level_of_need=LevelOfNeed.EARLY_HELP,
                submitted_at=at,
                child_ref=child_ref,
                needs_profile={SCI: 3},
            )
        )
    ]
    if information:
        events.append(
            event(ReferralInformationAddedV1(referral_id=referral_id, needs_profile={SCI: 4}, added_at=at))
        )
    if path == "unmatched":
        return [
            *events,
            event(
                ReferralUnmatchedV1(
                    referral_id=referral_id,
                    unmet_needs=codes,
                    locality=locality,
                    reason="none",
                    decided_at=at,
                )
            ),
        ]
    if path == "escalated":
        return [
            *events,
            event(
                ReferralEscalatedV1(
                    referral_id=referral_id,
                    reason=escalation,
                    locality=locality,
                    setting_id=setting,
                    escalated_at=at,
                )
            ),
        ]
    offer = Offer(
        provision_id=provision,
        provision_name=provision.replace("-", " ").title(),
        organisation="Agency",
        organisation_id="agency",
        sector=sector,
        needs_met=codes,
        explanation="tests",
    )
    day = timedelta(days=1)
    events.append(event(ReferralRoutedV1(referral_id=referral_id, offers=[offer], routed_at=at + day)))
    move = {"referral_id": referral_id, "provision_id": provision, "organisation_id": "agency"}
    if path == "declined":
        return [*events, event(OfferDeclinedV1(**move, at=at + 2 * day, reason=decline))]
    if path == "withdrawn":
        return [
            *events,
            event(
                ReferralWithdrawnV1(
                    referral_id=referral_id, reason=WithdrawReason.OTHER, withdrawn_at=at + 2 * day
                )
            ),
        ]
    if path == "routed":
        return events
    events.append(event(OfferAcceptedV1(**move, at=at + 2 * day)))
    if path == "accepted":
        return events
    events.append(event(OfferStartedV1(**move, at=at + 4 * day)))
    if path == "started":
        return events
    events.append(
        event(
            OfferCompletedV1(
                **move, at=at + 30 * day, outcome=Outcome.NEEDS_MET, needs_profile_after={SCI: profile_after}
            )
        )
    )
    return events
