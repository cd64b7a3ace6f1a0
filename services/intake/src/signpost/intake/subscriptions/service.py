"""Subscriptions and the deliveries they are owed.

Deliveries are queued in the same transaction that records the event as processed,
so every event reaches every subscriber once queued, whatever restarts in between.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import UTC, datetime
from urllib.parse import urlsplit

import httpx
import uuid6
from pymongo import ASCENDING, IndexModel
from signpost.intake.paging import newest_first
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
    # The dispatcher's due deliveries: exactly its query's fields. SecantusDB walks an index only
    # for a filter of its leading fields; with the tenant beside (status, next_attempt_at) it read
    # every pending delivery each round, however far off their retries.
    IndexModel([("tenant", ASCENDING), ("status", ASCENDING), ("next_attempt_at", ASCENDING)]),
    # A subscription's delivery log, newest first, all of it or one status (operators look for failures).
    IndexModel([("subscription_id", ASCENDING), ("_id", ASCENDING)]),
    IndexModel([("subscription_id", ASCENDING), ("status", ASCENDING), ("_id", ASCENDING)]),
]
RETIRED_DELIVERY_INDEXES = ["status_1_next_attempt_at_1"]  # replaced by the one with the tenant


class UnsafeWebhookUrl(ValueError):
    pass


def check_url(url: str, *, development: bool, loopback_only: bool = False) -> None:
    """https everywhere; plain http only to this machine, and only in development; and a URL
    the HTTP client can send to."""
    try:
        check_outbound(url, loopback_only=loopback_only)
    except OutboundRefused as exc:
        raise UnsafeWebhookUrl(f"url {exc}") from None
    parts = urlsplit(url)
    if parts.scheme != "https" and not (development and is_loopback(parts.hostname or "")):
        raise UnsafeWebhookUrl("url must use https (plain http is allowed only to loopback in development)")
    try:
        # pydantic takes any `xn--` host; httpx IDNA-decodes it for each request and raises on
        # one that is not valid IDNA, so refuse it now rather than at every delivery.
        httpx.Request("POST", url)
    except (httpx.InvalidURL, ValueError) as exc:
        raise UnsafeWebhookUrl(f"url host {parts.hostname!r} is not a valid domain name: {exc}") from None


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


async def delivery_log(
    *, runtime: Runtime, subscription_id: str, status: DeliveryStatus | None, limit: int, cursor: str | None
) -> tuple[list[Document], str | None]:
    """One page of a subscription's deliveries, newest first, and the cursor for the next."""
    query: Document = {"subscription_id": subscription_id}
    if status is not None:
        query["status"] = status.value
    return await newest_first(runtime.db[DELIVERIES], query, limit=limit, cursor=cursor)


async def queue_deliveries(
    *, runtime: Runtime, events: Sequence[tuple[Envelope[EventData], Document]], session: Session
) -> int:
    """For each event, with its referral as it was once the event was applied: one delivery per
    active subscription of each organisation the referral was offered to. One read of the
    subscriptions and one write for the whole batch."""
    offered = [
        (envelope, referral, {offer["organisation_id"] for offer in referral.get("offers", [])})
        for envelope, referral in events
    ]
    organisations = sorted({organisation for *_, offered_to in offered for organisation in offered_to})
    if not organisations:
        return 0
    subscriptions = (
        await runtime.db[SUBSCRIPTIONS]
        .find(
            {
                "tenant": {"$in": sorted({referral["tenant"] for _, referral, _ in offered})},
                "organisation": {"$in": organisations},
                "active": True,
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
        for envelope, referral, offered_to in offered
        for subscription in subscriptions
        if subscription["tenant"] == referral["tenant"]
        and subscription["organisation"] in offered_to
        and {envelope.type, ALL_EVENTS} & set(subscription["event_types"])
    ]
    if deliveries:
        await runtime.db[DELIVERIES].insert_many(deliveries, session=session)
    return len(deliveries)
