"""The referral a practitioner submits, and the shapes of intake's HTTP API.

The child's identifying details (`ChildDetails`) are stored only in intake's
database; events carry the pseudonymous child reference, the age and the needs.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)
from signpost.intake.paging import Page
from signpost.shared.events import NeedsProfile, Offer
from signpost.shared.lifecycle import Move, ReferralStatus
from signpost.shared.text import Identifier, MultiLine, SingleLine, in_words, is_stored
from signpost.shared.timestamps import day_in_england
from signpost.shared.vocabulary import (
    EscalationReason,
    FamilyNeed,
    LawfulBasis,
    LevelOfNeed,
    NeedCode,
    Sector,
    Urgency,
    WithdrawReason,
)

REFERRALS = "referrals"

Name = Annotated[SingleLine, Field(min_length=1, max_length=100)]
Text = Annotated[MultiLine, Field(max_length=4000)]

_POSTCODE = re.compile(r"^(GIR ?0AA|[A-Z]{1,2}[0-9][A-Z0-9]? ?[0-9][A-Z]{2})$")
_UPN = re.compile(r"^[A-Z][0-9]{11}[0-9A-Z]$")
# ASCII digits only: str.isdigit() and int() take any script's digits, and the same number
# written in another would give the child a second pseudonymous reference.
_NHS_NUMBER = re.compile(r"^[0-9]{10}$")
MAX_AGE_YEARS = 25


def _postcode(value: str) -> str:
    normalised = " ".join(value.upper().split())
    if not _POSTCODE.match(normalised):
        raise ValueError("not a UK postcode")
    compact = normalised.replace(" ", "")
    return f"{compact[:-3]} {compact[-3:]}"


def _nhs_number(value: str, info: ValidationInfo) -> str:
    if is_stored(info):  # older releases took any script's digits: read back as stored
        return value
    digits = value.replace(" ", "").replace("-", "")
    if not _NHS_NUMBER.match(digits):
        raise ValueError("an NHS number has 10 digits (0-9)")
    check = 11 - sum(int(d) * w for d, w in zip(digits[:9], range(10, 1, -1), strict=True)) % 11
    if check == 10 or (check % 11) != int(digits[9]):
        raise ValueError("not a valid NHS number (the check digit does not match)")
    return digits


def _upn(value: str) -> str:
    upn = value.upper().replace(" ", "")
    if not _UPN.match(upn):
        raise ValueError("a UPN is a letter, 11 digits and a final digit or letter")
    return upn


Postcode = Annotated[str, Field(max_length=10), AfterValidator(_postcode)]
NhsNumber = Annotated[str, Field(max_length=14), AfterValidator(_nhs_number)]
Upn = Annotated[str, Field(max_length=16), AfterValidator(_upn)]


class Strict(BaseModel):
    """Unknown fields are refused rather than silently dropped."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class ReferrerRole(StrEnum):
    SENCO = "senco"
    TEACHER = "teacher"
    HEALTH_VISITOR = "health_visitor"
    GP = "gp"
    SCHOOL_NURSE = "school_nurse"
    SOCIAL_WORKER = "social_worker"
    FAMILY_SUPPORT_WORKER = "family_support_worker"
    EARLY_YEARS_PRACTITIONER = "early_years_practitioner"
    OTHER = "other"


PHONE = r"^[0-9 +()-]{6,20}$"
EMAIL = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"


class Referrer(Strict):
    name: Name
    role: ReferrerRole
    organisation: Name
    setting_id: Identifier | None = None
    phone: (
        Annotated[
            str,
            in_words(PHONE, "6 to 20 digits, spaces and + ( ) -"),
            Field(json_schema_extra={"pattern": PHONE}),
        ]
        | None
    ) = None
    email: (
        Annotated[
            SingleLine,
            in_words(EMAIL, "an email address, such as name@example.org"),
            Field(max_length=254, json_schema_extra={"pattern": EMAIL}),
        ]
        | None
    ) = None


class Address(Strict):
    line1: Name
    line2: Name | None = None
    town: Name | None = None
    postcode: Postcode


class ChildDetails(Strict):
    """Identifying details: they never leave intake's database except through the audited API."""

    given_name: Name
    family_name: Name
    date_of_birth: date
    nhs_number: NhsNumber | None = None
    upn: Upn | None = Field(default=None, description="Unique pupil number.")
    address: Address
    confidential_address: bool = Field(
        default=False,
        description="The family's address must not be shared (a refuge, a threat to the family): "
        "only the referring organisation reads it; agencies get the other details without it.",
    )

    @field_validator("date_of_birth")
    @classmethod
    def _plausible(cls, born: date, info: ValidationInfo) -> date:
        if is_stored(info):  # a child referred at 24 may be read back at 26
            return born
        today = day_in_england(datetime.now(UTC))
        if born > today:
            raise ValueError("is in the future")
        if age_on(born, today) > MAX_AGE_YEARS:
            raise ValueError(f"makes the child older than {MAX_AGE_YEARS}; SEND support runs 0-25")
        return born


class ChildDetailsView(ChildDetails):
    """The audited read's answer: as submitted, less what the reader may not see."""

    address: Address | None = Field(  # type: ignore[assignment]  # required on input, may be withheld here
        default=None,
        description="Null when withheld: the address is confidential and you are not the referring organisation.",
    )


def age_on(born: date, day: date) -> int:
    return day.year - born.year - ((day.month, day.day) < (born.month, born.day))


class GraduatedApproach(Strict):
    """What the setting has already tried: assess, plan, do, review cycles."""

    cycles_completed: int = Field(ge=0, le=20)
    summary: Text = ""
    worked: bool | None = Field(default=None, description="Did the last review find the support worked?")


class Consent(Strict):
    family_agrees_to_early_help: bool = Field(description="Early help is voluntary: the family must agree.")
    lawful_basis: LawfulBasis = Field(description="The basis for sharing the child's details with agencies.")
    sharing_scope: list[Sector] = Field(min_length=1, description="Which sectors may receive the details.")


class ReferralRequest(Strict):
    referrer: Referrer
    child: ChildDetails
    locality: Identifier = Field(description="The locality within the local area, e.g. a ward.")
    setting_id: Identifier = Field(
        description="The child's school, college or early-years setting (e.g. URN)."
    )
    need_codes: list[NeedCode] = Field(
        min_length=1, max_length=len(NeedCode), description="Census need codes."
    )
    family_needs: list[FamilyNeed] = Field(default=[], max_length=len(FamilyNeed))
    needs_profile: NeedsProfile = Field(description="A score 0 (none) to 4 (severe) per domain.")
    level_of_need: LevelOfNeed
    urgency: Urgency = Urgency.ROUTINE
    graduated_approach: GraduatedApproach | None = None
    consent: Consent
    safeguarding_concern: bool = Field(
        default=False, description="A concern about harm: escalates to the front door at once, never queued."
    )
    details: Text = Field(default="", description="Anything else the receiving agency should know.")

    @field_validator("need_codes", "family_needs")
    @classmethod
    def _no_repeats(cls, values: list[StrEnum]) -> list[StrEnum]:
        if len(set(values)) != len(values):
            raise ValueError("each value may appear once")
        return values

    @model_validator(mode="after")
    def _agreement(self) -> ReferralRequest:
        # Safeguarding does not wait for agreement; early help cannot start without it.
        if not self.safeguarding_concern and not self.consent.family_agrees_to_early_help:
            raise ValueError(
                "consent.family_agrees_to_early_help must be true: early help needs the family's "
                "agreement (raise a safeguarding concern instead if the child is at risk)"
            )
        return self


class FrontDoor(BaseModel):
    name: str
    phone: str
    message: str


class ReferralAccepted(BaseModel):
    id: str
    status: ReferralStatus
    submitted_at: datetime
    front_door: FrontDoor | None = Field(
        default=None,
        description="Present when the referral was escalated for safeguarding: phone them as well.",
    )


class OfferView(Offer):
    status: ReferralStatus


class TimelineEntry(BaseModel):
    at: datetime
    type: str
    status: ReferralStatus
    actor_role: str
    actor_organisation: str
    note: str = ""
    note_withheld: bool = Field(
        default=False,
        description="True when the entry has a note you may not read (empty `note`): notes are free text, "
        "so only those who may read the child's details read every note; others read the platform's "
        "notes and their own organisation's.",
    )


class ReferralView(BaseModel):
    id: str
    tenant: str
    status: ReferralStatus
    allowed_moves: list[Move]
    child_ref: str
    age_years: int
    locality: str
    setting_id: str
    referrer_organisation: str
    need_codes: list[NeedCode]
    family_needs: list[FamilyNeed]
    needs_profile: NeedsProfile
    level_of_need: LevelOfNeed
    urgency: Urgency
    safeguarding_concern: bool
    escalation_reason: EscalationReason | None = None
    submitted_at: datetime
    decided_at: datetime | None = None
    withdrawn_reason: WithdrawReason | None = None
    offers: list[OfferView] = []
    unmet_needs: list[NeedCode] = []
    timeline: list[TimelineEntry] = []


class WithdrawRequest(Strict):
    reason: WithdrawReason
    note: Text = Field(default="", max_length=1000)


class InformationRequest(Strict):
    text: Text = Field(
        min_length=1, description="Kept in intake; events say only that information was added."
    )
    needs_profile: NeedsProfile | None = Field(
        default=None, description="A re-scored needs profile, if it changed."
    )


class ReferralPage(Page):
    items: list[ReferralView]
