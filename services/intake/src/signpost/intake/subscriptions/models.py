"""Partner agencies' webhook subscriptions and the log of each delivery."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import AnyHttpUrl, BaseModel, Field, field_validator
from signpost.intake.paging import Page
from signpost.intake.referrals.models import Strict
from signpost.shared.events import REFERRAL_EVENTS, ReferralSubmittedV1

SUBSCRIPTIONS = "subscriptions"
DELIVERIES = "deliveries"
ALL_EVENTS = "*"
# Intake queues a webhook for an event of a referral offered to the agency: never a provision or
# setting event (not on the referrals topic), nor a submission (it comes before any offer).
DELIVERED_EVENT_TYPES = frozenset(cls.event_type for cls in REFERRAL_EVENTS if cls is not ReferralSubmittedV1)

EventTypeName = Annotated[str, Field(min_length=1, max_length=120)]


class SubscriptionRequest(Strict):
    url: AnyHttpUrl = Field(
        description="Where to POST events: https (http only for loopback in development)."
    )
    event_types: list[EventTypeName] = Field(
        default=[ALL_EVENTS], min_length=1, description="CloudEvents `type`s to receive, or ['*'] for all."
    )
    secret: Annotated[str, Field(min_length=24, max_length=200)] | None = Field(
        default=None, description="Signing secret; one is generated (and shown once) if omitted."
    )

    @field_validator("event_types")
    @classmethod
    def _delivered(cls, types: list[str]) -> list[str]:
        never = [t for t in types if t != ALL_EVENTS and t not in DELIVERED_EVENT_TYPES]
        if never:
            raise ValueError(
                f"event types no webhook delivers {never}; '*' or: {sorted(DELIVERED_EVENT_TYPES)}"
            )
        return types


class SubscriptionView(BaseModel):
    id: str
    organisation: str
    url: str
    event_types: list[str]
    active: bool
    created_at: datetime


class SubscriptionCreated(SubscriptionView):
    secret: str = Field(description="Shown only now: keep it to verify the Signpost-Signature header.")


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"  # gave up after the last retry


class Attempt(BaseModel):
    at: datetime
    status_code: int | None
    error: str | None
    duration_ms: int


class DeliveryView(BaseModel):
    id: str
    subscription_id: str
    event_id: str
    event_type: str
    referral_id: str
    status: DeliveryStatus
    attempts: list[Attempt]
    next_attempt_at: datetime | None


class DeliveryPage(Page):
    items: list[DeliveryView]
