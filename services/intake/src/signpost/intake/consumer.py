"""What intake does with the referral events on Kafka, a batch of them in one transaction: record
routing's decisions, and queue each event for the webhooks of every agency the referral was
offered to. Redeliveries change nothing (processed-event records, in the same transaction)."""

from __future__ import annotations

from collections.abc import Sequence

from signpost.intake.referrals.models import REFERRALS
from signpost.intake.referrals.service import record_routing_decision
from signpost.intake.subscriptions.dispatcher import WebhookDispatcher
from signpost.intake.subscriptions.service import queue_deliveries
from signpost.shared.events import Envelope, EventData
from signpost.shared.mongo import Document, Session, in_transaction, mark_processed_many
from signpost.shared.service import Runtime


async def on_referral_events(
    *, runtime: Runtime, envelopes: Sequence[Envelope[EventData]], dispatcher: WebhookDispatcher
) -> None:
    async def write(session: Session) -> int:
        fresh = await mark_processed_many(runtime.db, event_ids=[e.id for e in envelopes], session=session)
        new: list[Envelope[EventData]] = []
        for envelope in envelopes:
            if envelope.id in fresh:
                fresh.discard(envelope.id)  # the same event twice in a batch is handled once
                new.append(envelope)
        if not new:
            return 0
        referrals: dict[str, Document | None] = {
            doc["_id"]: doc
            async for doc in runtime.db[REFERRALS].find(
                {"_id": {"$in": list({e.subject for e in new})}}, session=session
            )
        }
        applied: list[tuple[Envelope[EventData], Document]] = []
        for envelope in new:  # in order: each event sees the referral as the events before left it
            referral = await record_routing_decision(
                runtime=runtime, envelope=envelope, referral=referrals.get(envelope.subject), session=session
            )
            referrals[envelope.subject] = referral
            if referral is not None:
                applied.append((envelope, referral))
        return await queue_deliveries(runtime=runtime, events=applied, session=session)

    if await in_transaction(runtime.client, write):
        dispatcher.notify()


async def on_referral_event(
    *, runtime: Runtime, envelope: Envelope[EventData], dispatcher: WebhookDispatcher
) -> None:
    await on_referral_events(runtime=runtime, envelopes=[envelope], dispatcher=dispatcher)
