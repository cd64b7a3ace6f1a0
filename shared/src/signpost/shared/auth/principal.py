"""The authenticated caller, as every endpoint sees it."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class Role(StrEnum):
    PRACTITIONER = "practitioner"  # submits and follows referrals for their organisation
    AGENCY = "agency"  # receives offers made to its organisation, closes the loop
    ANALYST = "analyst"  # aggregates only, never identifying details
    OPS = "ops"  # streams and health, never identifying details
    ADMIN = "admin"  # configuration and the audit log


class Principal(BaseModel):
    model_config = ConfigDict(frozen=True)

    subject: str = Field(min_length=1, description="The token's `sub`: a stable user id.")
    name: str | None = Field(default=None, description="Display name, for audit records.")
    role: Role
    organisation: str = Field(min_length=1, description="The caller's organisation id.")
    tenant: str = Field(min_length=1, description="The local area the token is for.")
