"""What intake does with the referral events on Kafka, a batch of them in one transaction: record
routing's decisions, and queue each event for the webhooks of every agency the referral was
offered to. Redeliveries change nothing (processed-event records, in the same transaction)."""

from __future__ import annotations

from collections.abc import Sequence

from signpost.intake.referrals.models import REFERRALS
from signpost.intake.referrals.service import ReferralChange, routing_decision_change, save_referral_changes
from signpost.intake.subscriptions.dispatcher import WebhookDispatcher
from signpost.intake.subscriptions.service import queue_deliveries
from signpost.shared.events import (
    Envelope,
    EventData,
    ReferralEscalatedV1,
    ReferralRoutedV1,
    ReferralSubmittedV1,
    ReferralUnmatchedV1,
)
from signpost.shared.mongo import Document, Session, find_by_ids, in_area, in_transaction, mark_processed_many
from signpost.shared.service import Runtime

DECISIONS = (ReferralRoutedV1, ReferralUnmatchedV1, ReferralEscalatedV1)


async def on_referral_events(
    *, runtime: Runtime, envelopes: Sequence[Envelope[EventData]], dispatcher: WebhookDispatcher
) -> None:
    relevant = await _that_may_change_anything(runtime, envelopes)
    if not relevant:
        return

    async def write(session: Session) -> int:
        fresh = await mark_processed_many(runtime.db, event_ids=[e.id for e in relevant], session=session)
        new: list[Envelope[EventData]] = []
        for envelope in relevant:
            if envelope.id in fresh:
                fresh.discard(envelope.id)  # the same event twice in a batch is handled once
                new.append(envelope)
        if not new:
            return 0
        found = await find_by_ids(runtime.db[REFERRALS], list({e.subject for e in new}), session=session)
        referrals = {i: doc for i, doc in found.items() if in_area(doc, runtime.settings.tenant)}
        changes: list[ReferralChange] = []
        applied: list[tuple[Envelope[EventData], Document]] = []
        for envelope in new:  # in order: each event sees the referral as the events before left it
            referral = referrals.get(envelope.subject)
            change = routing_decision_change(envelope=envelope, referral=referral)
            if change is not None:
                changes.append(change)
                referral = referrals[envelope.subject] = change.after()
            if referral is not None:
                applied.append((envelope, referral))
        await save_referral_changes(runtime=runtime, changes=changes, session=session)
        return await queue_deliveries(runtime=runtime, events=applied, session=session)

    if await in_transaction(runtime.client, write):
        dispatcher.notify()


async def _that_may_change_anything(
    runtime: Runtime, envelopes: Sequence[Envelope[EventData]]
) -> list[Envelope[EventData]]:
    """The events that can change anything here, in order: routing's decisions, and any event of a
    referral offered to an agency (a webhook is owed), or about to be by a decision in this batch.
    The rest, submissions among them, leave no trace, not even a processed-event record (with no
    effect there is nothing to repeat). Only this partition's consumer adds offers, in order, so
    the answer cannot go stale.

    A submission is its referral's first event in the partition, before any decision could make an
    offer: it owes no webhook, so it is dropped whatever batch it comes in (on a redelivery beside
    its decision, as on its first delivery alone)."""
    candidates = [e for e in envelopes if not isinstance(e.data, ReferralSubmittedV1)]
    deciding = {e.subject for e in candidates if isinstance(e.data, DECISIONS)}
    others = list({e.subject for e in candidates} - deciding)
    offered = deciding
    if others:
        found = runtime.db[REFERRALS].find(
            {"_id": {"$in": others}, "offers.0": {"$exists": True}}, {"_id": 1, "tenant": 1}
        )
        offered = deciding | {doc["_id"] async for doc in found if in_area(doc, runtime.settings.tenant)}
    return [e for e in candidates if e.subject in offered]


async def on_referral_event(
    *, runtime: Runtime, envelope: Envelope[EventData], dispatcher: WebhookDispatcher
) -> None:
    await on_referral_events(runtime=runtime, envelopes=[envelope], dispatcher=dispatcher)
