"""A provision in the Local Offer, modelled on Open Referral UK (HSDS 3.0 UK profile)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
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
from signpost.shared.text import SingleLine, is_stored
from signpost.shared.timestamps import UtcDateTime
from signpost.shared.vocabulary import BROAD_AREA_OF, BroadArea, LevelOfNeed, NeedCode, Sector

PROVISIONS = "provisions"
WHOLE_AREA = "*"
MAX_WAITING_WEEKS = 520
LONGEST_LOCALITY = 100
# A Local Offer provision's places: a setting, a caseload, an area-wide service. A million is more
# than any local area's children and young people, and keeps a figure well inside what BSON stores.
MAX_PLACES = 1_000_000


def _not_blank(value: str, info: ValidationInfo) -> str:
    """Intake strips its text and refuses what is left empty; a provision's text is stored as sent, so
    only text that is nothing but spaces is refused (an older release's is read back as it is)."""
    if not value.strip() and not is_stored(info):
        raise ValueError("must not be blank")
    return value


# One line that says something: "   " names no provision, organisation, locality or way to reach one.
Filled = Annotated[SingleLine, AfterValidator(_not_blank)]
Locality = Annotated[Filled, Field(min_length=1, max_length=LONGEST_LOCALITY)]


class DeliveryMode(StrEnum):
    IN_PERSON = "in_person"
    ONLINE = "online"
    TELEPHONE = "telephone"
    BLENDED = "blended"


# How far ahead of routing's clock a capacity's `updated` may be (another clock stamping now).
CLOCK_SKEW_MINUTES = 5


def ahead_of_now(updated: datetime | None) -> bool:
    """A figure stated as of a time to come: it would make every figure stated as of now look stale
    (an admin's PUT refused with 412, a feed's figure kept out) until then."""
    return updated is not None and updated > datetime.now(UTC) + timedelta(minutes=CLOCK_SKEW_MINUTES)


class Capacity(BaseModel):
    """HSDS 3.1 `service_capacity`: places available now out of the maximum."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    available: int = Field(ge=0, json_schema_extra={"maximum": MAX_PLACES})
    maximum: int = Field(ge=1, json_schema_extra={"maximum": MAX_PLACES})
    updated: UtcDateTime | None = None

    @field_validator("available", "maximum")
    @classmethod
    def _at_most_max_places(cls, places: int, info: ValidationInfo) -> int:
        """Not `le`: older releases stored any figure BSON could hold, and those are read back."""
        if places > MAX_PLACES and not is_stored(info):
            raise ValueError(f"must be at most {MAX_PLACES:,} places")
        return places

    @field_validator("updated", mode="before")
    @classmethod
    def _stored_as_it_was(cls, value: object, info: ValidationInfo) -> object:
        """Older releases stored times without a zone (read as UTC) or beyond UTC (dropped)."""
        if not is_stored(info) or not isinstance(value, str):
            return value
        try:
            moment = datetime.fromisoformat(value)
            return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
        except (ValueError, OverflowError):
            return None

    @model_validator(mode="after")
    def _within_maximum(self) -> Capacity:
        if self.available > self.maximum:
            raise ValueError(f"available ({self.available}) is above maximum ({self.maximum})")
        return self

    @property
    def share_free(self) -> float:
        return self.available / self.maximum


class Contact(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    email: Filled | None = Field(default=None, max_length=254)
    phone: Filled | None = Field(default=None, max_length=30)
    url: Filled | None = Field(default=None, max_length=500)


class Provision(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    name: Filled = Field(min_length=1, max_length=200)
    organisation: Filled = Field(min_length=1, max_length=200)
    organisation_id: str = Field(
        min_length=1,
        max_length=64,
        pattern=r"^[a-z0-9][a-z0-9-]*$",
        description="Matches the agency's token `org` claim.",
    )
    sector: Sector
    need_codes: list[NeedCode] = Field(default=[], description="Census need codes served.")
    broad_areas: list[BroadArea] = Field(
        default=[], description="Whole broad areas served (every need code in them)."
    )
    min_age: int = Field(ge=0, le=25)
    max_age: int = Field(ge=0, le=25)
    localities: list[Locality] = Field(
        min_length=1, max_length=1000, description="Service areas; '*' means the whole local area."
    )
    levels_of_need: list[LevelOfNeed] = Field(
        default=[LevelOfNeed.EARLY_HELP, LevelOfNeed.TARGETED],
        min_length=1,
        description="Levels of need accepted.",
    )
    delivery_mode: DeliveryMode = DeliveryMode.IN_PERSON
    cost: Filled = Field(default="free", max_length=200)
    contact: Contact = Contact()
    capacity: Capacity | None = Field(
        default=None, description="Unknown capacity counts as neither full nor free."
    )
    waiting_weeks: float | None = Field(
        default=None,
        ge=0,
        le=MAX_WAITING_WEEKS,
        description="Current typical wait to start; routing updates it from observed waits.",
    )
    active: bool = True

    @model_validator(mode="after")
    def _consistent(self) -> Provision:
        if self.min_age > self.max_age:
            raise ValueError(f"min_age {self.min_age} is above max_age {self.max_age}")
        if not self.need_codes and not self.broad_areas:
            raise ValueError("a provision serves at least one need code or broad area")
        return self

    def covers(self, need: NeedCode) -> bool:
        return need in self.need_codes or BROAD_AREA_OF[need] in self.broad_areas

    def serves_locality(self, locality: str) -> bool:
        wanted = locality.casefold()
        return any(served in (WHOLE_AREA, wanted) for served in map(str.casefold, self.localities))
