"""Subscriptions and the deliveries they are owed.

Deliveries are queued in the same transaction that records the event as processed,
so every event reaches every subscriber once queued, whatever restarts in between.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from urllib.parse import urlsplit

import uuid6
from pymongo import ASCENDING, IndexModel
from signpost.intake.subscriptions.models import (
    ALL_EVENTS,
    DELIVERIES,
    SUBSCRIPTIONS,
    DeliveryStatus,
    SubscriptionRequest,
)
from signpost.shared.auth.principal import Principal
from signpost.shared.events import Envelope, EventData, to_kafka_headers, to_kafka_value
from signpost.shared.mongo import Document, Session
from signpost.shared.outbound import OutboundRefused, check_outbound, is_loopback
from signpost.shared.service import Runtime

SUBSCRIPTION_INDEXES = [
    IndexModel([("tenant", ASCENDING), ("organisation", ASCENDING), ("active", ASCENDING)])
]
DELIVERY_INDEXES = [
    IndexModel([("status", ASCENDING), ("next_attempt_at", ASCENDING)]),
    IndexModel([("subscription_id", ASCENDING), ("_id", ASCENDING)]),
]


class UnsafeWebhookUrl(ValueError):
    pass


def check_url(url: str, *, development: bool, loopback_only: bool = False) -> None:
    """https everywhere; plain http only to this machine, and only in development."""
    try:
        check_outbound(url, loopback_only=loopback_only)
    except OutboundRefused as exc:
        raise UnsafeWebhookUrl(f"url {exc}") from None
    parts = urlsplit(url)
    if parts.scheme == "https":
        return
    if development and is_loopback(parts.hostname or ""):
        return
    raise UnsafeWebhookUrl("url must use https (plain http is allowed only to loopback in development)")


async def create_subscription(
    *, runtime: Runtime, principal: Principal, request: SubscriptionRequest
) -> Document:
    url = str(request.url)
    check_url(
        url,
        development=runtime.settings.environment == "development",
        loopback_only=runtime.settings.outbound_loopback_only,
    )
    subscription: Document = {
        "_id": str(uuid6.uuid7()),
        "tenant": runtime.settings.tenant,
        "organisation": principal.organisation,
        "created_by": principal.subject,
        "url": url,
        "event_types": request.event_types,
        "secret": request.secret or secrets.token_urlsafe(32),
        "active": True,
        "created_at": datetime.now(UTC),
    }
    await runtime.db[SUBSCRIPTIONS].insert_one(subscription)
    return subscription


def owned_by(principal: Principal, *, tenant: str) -> Document:
    return {"tenant": tenant, "organisation": principal.organisation}


async def queue_deliveries(
    *, runtime: Runtime, envelope: Envelope[EventData], referral: Document, session: Session
) -> int:
    """One delivery per active subscription of each organisation the referral was offered to."""
    organisations = sorted({offer["organisation_id"] for offer in referral.get("offers", [])})
    if not organisations:
        return 0
    subscriptions = (
        await runtime.db[SUBSCRIPTIONS]
        .find(
            {
                "tenant": referral["tenant"],
                "organisation": {"$in": organisations},
                "active": True,
                "event_types": {"$in": [envelope.type, ALL_EVENTS]},
            },
            session=session,
        )
        .to_list()
    )
    now = datetime.now(UTC)
    deliveries = [
        {
            "_id": str(uuid6.uuid7()),
            "subscription_id": subscription["_id"],
            "organisation": subscription["organisation"],
            "tenant": referral["tenant"],
            "event_id": envelope.id,
            "event_type": envelope.type,
            "referral_id": envelope.subject,
            "headers": to_kafka_headers(envelope),
            "body": to_kafka_value(envelope),
            "status": DeliveryStatus.PENDING.value,
            "attempts": [],
            "next_attempt_at": now,
        }
        for subscription in subscriptions
    ]
    if deliveries:
        await runtime.db[DELIVERIES].insert_many(deliveries, session=session)
    return len(deliveries)
