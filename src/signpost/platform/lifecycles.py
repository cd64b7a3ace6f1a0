"""Builders for the events of one referral's lifecycle, as intake and routing publish them.

The analytics tests (tests/analytics_events.py) and the analytics benchmark (bench/analytics.py)
make their synthetic streams from these, so both feed the projections events of one shape.
Nothing here identifies anyone: ids, localities and settings are whatever the caller invents.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from signpost.shared.events import (
    Envelope,
    EventData,
    NeedsProfile,
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
    Outcome,
    Sector,
    WithdrawReason,
    broad_areas,
)


@dataclass(frozen=True)
class ReferralEvents:
    """The events of one referral in one area, each in its own envelope keyed by the referral."""

    referral_id: str
    tenant: str
    source: str

    def envelope(self, data: EventData) -> Envelope[EventData]:
        return new_event(data, source=self.source, tenant=self.tenant)

    def submitted(
        self,
        *,
        at: datetime,
        needs: Sequence[NeedCode],
        locality: str,
        setting_id: str,
        level_of_need: LevelOfNeed = LevelOfNeed.EARLY_HELP,
        age_years: int = 7,
        child_ref: str = "",
        needs_profile: NeedsProfile | None = None,
    ) -> Envelope[EventData]:
        return self.envelope(
            ReferralSubmittedV1(
                referral_id=self.referral_id,
                age_years=age_years,
                locality=locality,
                setting_id=setting_id,
                need_codes=list(needs),
                broad_areas=broad_areas(list(needs)),
                level_of_need=level_of_need,
                submitted_at=at,
                child_ref=child_ref,
                needs_profile=needs_profile or {},
            )
        )

    def information_added(self, *, at: datetime, needs_profile: NeedsProfile) -> Envelope[EventData]:
        return self.envelope(
            ReferralInformationAddedV1(referral_id=self.referral_id, needs_profile=needs_profile, added_at=at)
        )

    def escalated(
        self, *, at: datetime, reason: EscalationReason, locality: str, setting_id: str
    ) -> Envelope[EventData]:
        return self.envelope(
            ReferralEscalatedV1(
                referral_id=self.referral_id,
                reason=reason,
                locality=locality,
                setting_id=setting_id,
                escalated_at=at,
            )
        )

    def unmatched(
        self, *, at: datetime, unmet_needs: Sequence[NeedCode], locality: str
    ) -> Envelope[EventData]:
        return self.envelope(
            ReferralUnmatchedV1(
                referral_id=self.referral_id,
                unmet_needs=list(unmet_needs),
                locality=locality,
                reason="none",
                decided_at=at,
            )
        )

    def routed(self, *, at: datetime, offers: Sequence[Offer]) -> Envelope[EventData]:
        return self.envelope(
            ReferralRoutedV1(referral_id=self.referral_id, offers=list(offers), routed_at=at)
        )

    def accepted(self, offer: Offer, *, at: datetime) -> Envelope[EventData]:
        return self.envelope(OfferAcceptedV1(**self._move(offer), at=at))

    def declined(self, offer: Offer, *, at: datetime, reason: DeclineReason) -> Envelope[EventData]:
        return self.envelope(OfferDeclinedV1(**self._move(offer), at=at, reason=reason))

    def started(self, offer: Offer, *, at: datetime) -> Envelope[EventData]:
        return self.envelope(OfferStartedV1(**self._move(offer), at=at))

    def completed(
        self, offer: Offer, *, at: datetime, outcome: Outcome, needs_profile_after: NeedsProfile
    ) -> Envelope[EventData]:
        return self.envelope(
            OfferCompletedV1(
                **self._move(offer), at=at, outcome=outcome, needs_profile_after=needs_profile_after
            )
        )

    def withdrawn(self, *, at: datetime, reason: WithdrawReason) -> Envelope[EventData]:
        return self.envelope(
            ReferralWithdrawnV1(referral_id=self.referral_id, reason=reason, withdrawn_at=at)
        )

    def _move(self, offer: Offer) -> dict[str, str]:
        return {
            "referral_id": self.referral_id,
            "provision_id": offer.provision_id,
            "organisation_id": offer.organisation_id,
        }


def offer(provision_id: str, *, sector: Sector, needs_met: Sequence[NeedCode], organisation_id: str) -> Offer:
    """An offer of one provision, named after its id, as routing would make it."""
    return Offer(
        provision_id=provision_id,
        provision_name=provision_id.replace("-", " ").title(),
        organisation=organisation_id.replace("-", " ").title(),
        organisation_id=organisation_id,
        sector=sector,
        needs_met=list(needs_met),
        explanation="synthetic",
    )
