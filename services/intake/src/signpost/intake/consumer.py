"""What intake does with each referral event on Kafka, in one transaction per event:
record routing's decisions, and queue the event for the webhooks of every agency the
referral was offered to. Redeliveries change nothing (processed-event record)."""

from __future__ import annotations

from signpost.intake.referrals.models import REFERRALS
from signpost.intake.referrals.service import record_routing_decision
from signpost.intake.subscriptions.dispatcher import WebhookDispatcher
from signpost.intake.subscriptions.service import queue_deliveries
from signpost.shared.events import Envelope, EventData
from signpost.shared.mongo import Session, in_transaction, mark_processed
from signpost.shared.service import Runtime


async def on_referral_event(
    *, runtime: Runtime, envelope: Envelope[EventData], dispatcher: WebhookDispatcher
) -> None:
    async def write(session: Session) -> int:
        if not await mark_processed(runtime.db, event_id=envelope.id, session=session):
            return 0
        await record_routing_decision(runtime=runtime, envelope=envelope, session=session)
        referral = await runtime.db[REFERRALS].find_one({"_id": envelope.subject}, session=session)
        if referral is None:
            return 0
        return await queue_deliveries(runtime=runtime, envelope=envelope, referral=referral, session=session)

    if await in_transaction(runtime.client, write):
        dispatcher.notify()
