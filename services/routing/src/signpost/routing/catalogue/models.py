"""A provision in the Local Offer, as routing matches against it."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator
from signpost.shared.vocabulary import NeedCode, Sector

PROVISIONS = "provisions"


class Provision(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1, max_length=64)
    name: str = Field(min_length=1, max_length=200)
    organisation: str = Field(min_length=1, max_length=200)
    organisation_id: str = Field(
        min_length=1,
        max_length=64,
        pattern=r"^[a-z0-9][a-z0-9-]*$",
        description="Matches the agency's token `org` claim.",
    )
    sector: Sector
    need_codes: list[NeedCode] = Field(min_length=1)
    min_age: int = Field(ge=0, le=25)
    max_age: int = Field(ge=0, le=25)
    localities: list[str] = Field(min_length=1, description="Service areas; '*' means the whole local area.")
    active: bool = True

    @model_validator(mode="after")
    def _ages_in_order(self) -> Provision:
        if self.min_age > self.max_age:
            raise ValueError(f"min_age {self.min_age} is above max_age {self.max_age}")
        return self

    def serves_locality(self, locality: str) -> bool:
        return "*" in self.localities or locality in self.localities
