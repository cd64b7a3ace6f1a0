"""Intake's referral logic: accept a referral with its event, apply routing's decision."""

from __future__ import annotations

from datetime import UTC, datetime

import uuid6
from signpost.intake.referrals.models import REFERRALS, ReferralRequest
from signpost.shared.events import (
    Envelope,
    EventData,
    ReferralRoutedV1,
    ReferralSubmittedV1,
    ReferralUnmatchedV1,
    new_event,
)
from signpost.shared.lifecycle import IllegalTransition, Move, ReferralStatus, apply_move
from signpost.shared.logging import get_logger
from signpost.shared.mongo import Document, Session, in_transaction, mark_processed
from signpost.shared.outbox import stage_event
from signpost.shared.service import Runtime
from signpost.shared.vocabulary import broad_areas

log = get_logger(__name__)

SOURCE = "/signpost/intake"


async def submit_referral(*, runtime: Runtime, request: ReferralRequest, correlation_id: str) -> Document:
    """Store the referral and its `referral.submitted.v1` event in one transaction."""
    referral_id = str(uuid6.uuid7())
    now = datetime.now(UTC)
    tenant = runtime.settings.tenant
    event = new_event(
        ReferralSubmittedV1(
            referral_id=referral_id,
            age_years=request.age_years,
            locality=request.locality,
            setting_id=request.setting_id,
            need_codes=request.need_codes,
            broad_areas=broad_areas(request.need_codes),
            level_of_need=request.level_of_need,
            submitted_at=now,
        ),
        source=SOURCE,
        tenant=tenant,
        subject=referral_id,
        correlation_id=correlation_id,
    )
    referral: Document = {
        "_id": referral_id,
        "tenant": tenant,
        "status": ReferralStatus.SUBMITTED.value,
        **request.model_dump(mode="json"),
        "submitted_at": now,
        "decided_at": None,
        "offers": [],
        "unmet_needs": [],
    }

    async def write(session: Session) -> None:
        await runtime.db[REFERRALS].insert_one(referral, session=session)
        await stage_event(runtime.db, topic=runtime.topics.referrals, envelope=event, session=session)

    await in_transaction(runtime.client, write)
    runtime.events_committed()
    log.info("referral accepted", referral_id=referral_id, event_id=event.id)
    return referral


async def get_referral(*, runtime: Runtime, referral_id: str) -> Document | None:
    return await runtime.db[REFERRALS].find_one({"_id": referral_id, "tenant": runtime.settings.tenant})


async def apply_routing_decision(*, runtime: Runtime, envelope: Envelope[EventData]) -> None:
    """Move a referral to routed or unmatched; redeliveries change nothing."""
    data = envelope.data
    if isinstance(data, ReferralRoutedV1):
        move = Move.ROUTE
        change: Document = {
            "offers": [offer.model_dump(mode="json") for offer in data.offers],
            "decided_at": data.routed_at,
        }
    elif isinstance(data, ReferralUnmatchedV1):
        move = Move.UNMATCH
        change = {"unmet_needs": [need.value for need in data.unmet_needs], "decided_at": data.decided_at}
    else:
        return

    async def write(session: Session) -> None:
        if not await mark_processed(runtime.db, event_id=envelope.id, session=session):
            return
        referral = await runtime.db[REFERRALS].find_one(
            {"_id": data.referral_id}, {"status": 1}, session=session
        )
        if referral is None:
            log.warning("routing decision for an unknown referral; ignored", referral_id=data.referral_id)
            return
        current = ReferralStatus(referral["status"])
        try:
            change["status"] = apply_move(current, move).value
        except IllegalTransition as exc:
            log.warning("routing decision ignored", referral_id=data.referral_id, reason=str(exc))
            return
        # The status filter makes a concurrent change lose the race rather than be overwritten.
        await runtime.db[REFERRALS].update_one(
            {"_id": data.referral_id, "status": current.value}, {"$set": change}, session=session
        )

    await in_transaction(runtime.client, write)
