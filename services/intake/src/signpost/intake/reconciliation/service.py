"""Find referrals still waiting for routing's decision and publish their submitted event again.

An event can be lost after intake published it: a broker that lost its log on
restart (the embedded Tansu keeps it in memory), or a consumer bug fixed since.
Intake owns the referral, so intake notices the silence. It re-queues the very
same event (same id) through the outbox: a consumer that already handled it
skips it, and routing keeps one decision per referral and announces it again.

Several intake replicas may run this job: each referral is claimed with a
conditional update on `last_reconciled_at`, so one replica re-publishes it per round.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from functools import partial

from signpost.intake.referrals.models import REFERRALS
from signpost.shared.lifecycle import ReferralStatus
from signpost.shared.logging import get_logger
from signpost.shared.mongo import Document, Session
from signpost.shared.outbox import restage_event
from signpost.shared.service import Runtime

log = get_logger(__name__)

BATCH_SIZE = 500


def due_filter(*, tenant: str, now: datetime, after_s: float) -> Document:
    """Referrals still `submitted` `after_s` after submission and after their last re-publication.

    Safeguarding referrals are escalated when submitted, so they never match.
    """
    cutoff = now - timedelta(seconds=after_s)
    return {
        "tenant": tenant,
        "status": ReferralStatus.SUBMITTED.value,
        "submitted_at": {"$lte": cutoff},
        "$or": [{"last_reconciled_at": None}, {"last_reconciled_at": {"$lte": cutoff}}],
    }


async def find_due(*, runtime: Runtime, now: datetime, limit: int = BATCH_SIZE) -> list[Document]:
    """The oldest undecided referrals due for re-publication (ids and event ids only)."""
    settings = runtime.settings
    query = due_filter(tenant=settings.tenant, now=now, after_s=settings.reconcile_after_s)
    cursor = (
        runtime.db[REFERRALS]
        .find(query, {"_id": 1, "submitted_event_id": 1})
        .sort("submitted_at", 1)
        .limit(limit)
    )
    return await cursor.to_list()


async def reconcile_once(*, runtime: Runtime, now: datetime | None = None) -> int:
    """One round: claim each due referral and re-queue its submitted event; returns how many were claimed."""
    now = now or datetime.now(UTC)
    claimed = 0
    for candidate in await find_due(runtime=runtime, now=now):
        if await runtime.transaction(partial(_claim, runtime, candidate, now)):
            claimed += 1
    if claimed:
        log.info("re-published the submitted events of undecided referrals", count=claimed)
    return claimed


async def _claim(runtime: Runtime, candidate: Document, now: datetime, session: Session) -> bool:
    """Mark the referral re-published and re-queue its event, if it is still due: another replica,
    or routing's decision, may have got there first."""
    settings = runtime.settings
    due = due_filter(tenant=settings.tenant, now=now, after_s=settings.reconcile_after_s)
    result = await runtime.db[REFERRALS].update_one(
        {"_id": candidate["_id"], **due},
        {"$set": {"last_reconciled_at": now}, "$inc": {"reconciliations": 1}},
        session=session,
    )
    if result.modified_count != 1:
        return False
    event_id = candidate.get("submitted_event_id")
    if not event_id or not await restage_event(runtime.db, event_id=event_id, session=session):
        log.error(
            "undecided referral's submitted event is no longer in the outbox; cannot re-publish",
            referral_id=candidate["_id"],
        )
    return True


class Reconciler:
    """The background job: a round every `SIGNPOST_RECONCILE_INTERVAL_S`, at once again while rounds are full."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._runtime.settings.reconcile_interval_s)
            try:
                while await reconcile_once(runtime=self._runtime) == BATCH_SIZE:
                    pass
            except Exception as exc:  # MongoDB away: try again next round
                log.warning("reconciliation round failed; will retry", error=repr(exc))
