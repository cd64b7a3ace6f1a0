"""Agencies manage their webhook subscriptions and read their delivery log."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, status
from signpost.intake.paging import Cursor
from signpost.intake.subscriptions.models import (
    SUBSCRIPTIONS,
    DeliveryPage,
    DeliveryStatus,
    DeliveryView,
    SubscriptionCreated,
    SubscriptionRequest,
    SubscriptionView,
)
from signpost.intake.subscriptions.service import (
    UnsafeWebhookUrl,
    create_subscription,
    delivery_log,
    owned_by,
)
from signpost.shared.auth.dependencies import require_roles
from signpost.shared.auth.principal import Principal, Role
from signpost.shared.auth.ratelimit import rate_limited_write
from signpost.shared.mongo import Document
from signpost.shared.service import RuntimeDep, refused

router = APIRouter(prefix="/v1/subscriptions", tags=["subscriptions"])
AgencyDep = Annotated[Principal, Depends(require_roles(Role.AGENCY))]


def _view(subscription: Document) -> SubscriptionView:
    return SubscriptionView(
        id=subscription["_id"],
        **{k: v for k, v in subscription.items() if k in SubscriptionView.model_fields},
    )


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=SubscriptionCreated,
    dependencies=[Depends(rate_limited_write)],
    summary="Subscribe a webhook to the events of referrals offered to your organisation",
    description=(
        "Events arrive as CloudEvents in HTTP binary mode (`ce-*` headers, JSON `data` body) with "
        "a `Signpost-Signature: t=<unix>,v1=<hex>,v2=<hex>` header, each an HMAC-SHA256 keyed by the "
        "secret: v2 (verify this one) of `<t>\\n<ce-id>\\n<ce-type>\\n<ce-subject>\\n<body>`, v1 of "
        "`<t>.<body>` (kept for receivers written before v2; it leaves the event's id and type unsigned). "
        "Failed deliveries are retried with doubling delays; see the delivery log."
    ),
)
async def subscribe(
    body: SubscriptionRequest, runtime: RuntimeDep, principal: AgencyDep
) -> SubscriptionCreated:
    try:
        subscription = await create_subscription(runtime=runtime, principal=principal, request=body)
    except UnsafeWebhookUrl as exc:
        raise refused(str(exc), "body.url") from None
    return SubscriptionCreated(**_view(subscription).model_dump(), secret=subscription["secret"])


@router.get("", response_model=list[SubscriptionView], summary="Your organisation's subscriptions")
async def list_subscriptions(runtime: RuntimeDep, principal: AgencyDep) -> list[SubscriptionView]:
    found = runtime.db[SUBSCRIPTIONS].find(owned_by(principal, tenant=runtime.settings.tenant)).sort("_id")
    return [_view(s) async for s in found]


async def _owned(runtime: RuntimeDep, principal: Principal, subscription_id: str) -> Document:
    subscription = await runtime.db[SUBSCRIPTIONS].find_one(
        {"_id": subscription_id, **owned_by(principal, tenant=runtime.settings.tenant)}
    )
    if subscription is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no subscription {subscription_id!r} of yours")
    return subscription


@router.delete(
    "/{subscription_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    dependencies=[Depends(rate_limited_write)],
    summary="Stop a subscription (its delivery log is kept)",
    responses={404: {"description": "No such subscription of yours"}},
)
async def unsubscribe(subscription_id: str, runtime: RuntimeDep, principal: AgencyDep) -> None:
    await _owned(runtime, principal, subscription_id)
    await runtime.db[SUBSCRIPTIONS].update_one({"_id": subscription_id}, {"$set": {"active": False}})


@router.get(
    "/{subscription_id}/deliveries",
    response_model=DeliveryPage,
    summary="Every delivery and attempt for a subscription, newest first, a page at a time",
    description=(
        "A delivered or failed delivery is kept for `SIGNPOST_WEBHOOK_DELIVERY_RETENTION_DAYS` (30 by "
        "default) after it was queued, then deleted; a pending one is kept until it is delivered or fails."
    ),
    responses={404: {"description": "No such subscription of yours"}},
)
async def deliveries(
    subscription_id: str,
    runtime: RuntimeDep,
    principal: AgencyDep,
    status_: Annotated[DeliveryStatus | None, Query(alias="status")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Cursor = None,
) -> DeliveryPage:
    await _owned(runtime, principal, subscription_id)
    page, next_cursor = await delivery_log(
        runtime=runtime, subscription_id=subscription_id, status=status_, limit=limit, cursor=cursor
    )
    return DeliveryPage(
        items=[
            DeliveryView(id=d["_id"], **{k: v for k, v in d.items() if k in DeliveryView.model_fields})
            for d in page
        ],
        next_cursor=next_cursor,
    )
