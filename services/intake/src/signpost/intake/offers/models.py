"""What agencies send when they act on an offer."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field, model_validator
from signpost.intake.referrals.models import Strict, Text
from signpost.shared.events import NeedsProfile, Offer
from signpost.shared.lifecycle import Move, ReferralStatus
from signpost.shared.vocabulary import DeclineReason, LevelOfNeed, NeedCode, Outcome, Urgency


class DeclineRequest(Strict):
    reason: DeclineReason
    note: Text = Field(default="", max_length=1000)

    @model_validator(mode="after")
    def _other_needs_words(self) -> DeclineRequest:
        if self.reason is DeclineReason.OTHER and not self.note.strip():
            raise ValueError("note is required when reason is 'other': say why the offer is declined")
        return self


class CompleteRequest(Strict):
    outcome: Outcome
    needs_profile_after: NeedsProfile = Field(
        description="The needs re-scored when support ended (0-4 per domain)."
    )
    note: Text = Field(default="", max_length=2000)


class NoteRequest(Strict):
    note: Text = Field(default="", max_length=1000)


class OfferSummary(Offer):
    """An offer made to the caller's organisation, with what it needs to decide (no identifiers)."""

    referral_id: str
    status: ReferralStatus
    allowed_moves: list[Move]
    referral_status: ReferralStatus
    age_years: int
    locality: str
    need_codes: list[NeedCode]
    needs_profile: NeedsProfile
    level_of_need: LevelOfNeed
    urgency: Urgency
    offered_at: datetime | None
