"""The pulse projection: referral events folded into per-tenant counts, each event once."""

from __future__ import annotations

from signpost.shared.events import (
    Envelope,
    EventData,
    ReferralEscalatedV1,
    ReferralRoutedV1,
    ReferralSubmittedV1,
    ReferralUnmatchedV1,
)
from signpost.shared.mongo import Document, Session, in_transaction, mark_processed
from signpost.shared.service import Runtime

PULSE = "pulse"


def increments_for(data: EventData) -> Document:
    """The counters one event moves (pure, so the fold is testable without a database)."""
    if isinstance(data, ReferralSubmittedV1):
        return {"submitted": 1, **{f"by_need_code.{need.value}": 1 for need in data.need_codes}}
    if isinstance(data, ReferralRoutedV1):
        return {"by_outcome.routed": 1}
    if isinstance(data, ReferralUnmatchedV1):
        return {"by_outcome.unmatched": 1}
    if isinstance(data, ReferralEscalatedV1):
        return {f"by_outcome.escalated_{data.reason.value}": 1}
    return {}


async def fold_event(*, runtime: Runtime, envelope: Envelope[EventData]) -> None:
    increments = increments_for(envelope.data)
    if not increments:
        return

    async def write(session: Session) -> None:
        if not await mark_processed(runtime.db, event_id=envelope.id, session=session):
            return
        await runtime.db[PULSE].update_one(
            {"_id": envelope.tenant}, {"$inc": increments}, upsert=True, session=session
        )

    await in_transaction(runtime.client, write)


async def read_pulse(*, runtime: Runtime, tenant: str) -> Document:
    return await runtime.db[PULSE].find_one({"_id": tenant}) or {}
