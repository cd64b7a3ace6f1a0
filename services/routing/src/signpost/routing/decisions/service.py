"""Routing decisions: one per referral, stored with its event in one transaction."""

from __future__ import annotations

from datetime import UTC, datetime

from signpost.routing.catalogue.repository import list_provisions
from signpost.routing.matching import Catalogue, match_referral
from signpost.shared.events import (
    Envelope,
    EventData,
    ReferralRoutedV1,
    ReferralSubmittedV1,
    ReferralUnmatchedV1,
    new_event,
)
from signpost.shared.logging import get_logger
from signpost.shared.mongo import Document, Session, in_transaction, mark_processed
from signpost.shared.outbox import stage_event
from signpost.shared.service import Runtime

log = get_logger(__name__)

DECISIONS = "decisions"
SOURCE = "/signpost/routing"


async def route_referral(*, runtime: Runtime, envelope: Envelope[EventData]) -> None:
    """Match a submitted referral and record the decision with the event that announces it."""
    submitted = envelope.data
    # Safeguarding never reaches matching: intake has already escalated it to the front door.
    if not isinstance(submitted, ReferralSubmittedV1) or submitted.safeguarding_concern:
        return
    catalogue = Catalogue(await list_provisions(runtime.db, active_only=True))
    result = match_referral(
        submitted, catalogue, served_before=await _served_before(runtime, submitted.child_ref)
    )
    now = datetime.now(UTC)
    decision: EventData = (
        ReferralRoutedV1(referral_id=submitted.referral_id, offers=result.offers, routed_at=now)
        if result.offers
        else ReferralUnmatchedV1(
            referral_id=submitted.referral_id,
            unmet_needs=result.unmet_needs,
            locality=submitted.locality,
            reason="no active provision in the Local Offer covers these needs for this age and locality",
            decided_at=now,
        )
    )
    event = new_event(
        decision,
        source=SOURCE,
        tenant=envelope.tenant,
        subject=submitted.referral_id,
        correlation_id=envelope.correlationid,
        causation_id=envelope.id,
    )

    async def write(session: Session) -> None:
        if not await mark_processed(runtime.db, event_id=envelope.id, session=session):
            return
        # One decision per referral, even if its submission arrives again under a new event id.
        if await runtime.db[DECISIONS].find_one({"_id": submitted.referral_id}, {"_id": 1}, session=session):
            return
        record: Document = {
            "_id": submitted.referral_id,
            "tenant": envelope.tenant,
            "event_id": event.id,
            "type": event.type,
            "submitted_event_id": envelope.id,
            "decided_at": now,
            "child_ref": submitted.child_ref,
            "provision_ids": [offer.provision_id for offer in result.offers],
            "data": decision.model_dump(mode="json"),
        }
        await runtime.db[DECISIONS].insert_one(record, session=session)
        await stage_event(runtime.db, topic=runtime.topics.referrals, envelope=event, session=session)

    await in_transaction(runtime.client, write)
    runtime.events_committed()
    log.info("referral routed", referral_id=submitted.referral_id, decision=event.type)


async def _served_before(runtime: Runtime, child_ref: str) -> frozenset[str]:
    """Provisions offered to this child before (pseudonymous reference), for continuity."""
    if not child_ref:
        return frozenset()
    earlier = await runtime.db[DECISIONS].find({"child_ref": child_ref}, {"provision_ids": 1}).to_list()
    return frozenset(pid for decision in earlier for pid in decision.get("provision_ids", []))


async def get_decision(*, runtime: Runtime, referral_id: str) -> Document | None:
    return await runtime.db[DECISIONS].find_one({"_id": referral_id})
