"""Referral records and the shapes of intake's HTTP API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator
from signpost.shared.events import Offer
from signpost.shared.lifecycle import ReferralStatus
from signpost.shared.vocabulary import LevelOfNeed, NeedCode

REFERRALS = "referrals"

Identifier = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9 ._/-]*$")]


class ReferralRequest(BaseModel):
    """What a practitioner submits. Unknown fields are refused rather than silently dropped."""

    model_config = ConfigDict(extra="forbid")

    age_years: int = Field(ge=0, le=25, description="The child's age in whole years (0-25).")
    locality: Identifier = Field(
        description="The locality within the local area, e.g. a ward or district name."
    )
    setting_id: Identifier = Field(description="The school, college or early-years setting (e.g. its URN).")
    need_codes: list[NeedCode] = Field(
        min_length=1, max_length=len(NeedCode), description="School census SEN need codes."
    )
    level_of_need: LevelOfNeed

    @field_validator("need_codes")
    @classmethod
    def _no_repeats(cls, codes: list[NeedCode]) -> list[NeedCode]:
        if len(set(codes)) != len(codes):
            raise ValueError("each need code may appear once")
        return codes


class ReferralAccepted(BaseModel):
    id: str
    status: ReferralStatus
    submitted_at: datetime


class ReferralView(BaseModel):
    id: str
    tenant: str
    status: ReferralStatus
    age_years: int
    locality: str
    setting_id: str
    need_codes: list[NeedCode]
    level_of_need: LevelOfNeed
    submitted_at: datetime
    decided_at: datetime | None = None
    offers: list[Offer] = []
    unmet_needs: list[NeedCode] = []
