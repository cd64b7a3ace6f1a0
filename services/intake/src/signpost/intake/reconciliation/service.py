"""Find referrals still waiting for routing's decision and publish their submitted event again.

An event can be lost after intake published it: a broker that lost its log on
restart (the embedded Tansu keeps it in memory), or a consumer bug fixed since.
Intake owns the referral, so intake notices the silence. It re-queues the very
same event (same id) through the outbox: a consumer that already handled it
skips it, and routing keeps one decision per referral and announces it again.

Several intake replicas may run this job: each referral is claimed with a
conditional update on `next_reconcile_at`, so one replica re-publishes it per round.

A submission that is never decided (say dead-lettered by a consumer that does not
know one of its values yet) must not become thousands of copies on the topic: the
wait doubles after each re-publication up to a cap, and after a maximum number of
them the referral is given up on, logged once at ERROR and counted stuck.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from functools import partial

from prometheus_client import Gauge
from signpost.intake.referrals.models import REFERRALS
from signpost.shared.lifecycle import ReferralStatus
from signpost.shared.logging import get_logger
from signpost.shared.mongo import Document, Session
from signpost.shared.outbox import restage_event
from signpost.shared.service import Runtime

log = get_logger(__name__)

BATCH_SIZE = 500


def due_filter(*, tenant: str, now: datetime, after_s: float) -> Document:
    """Referrals still `submitted` `after_s` after submission, whose backoff has run out and
    that were not given up on.

    Safeguarding referrals are escalated when submitted, so they never match.
    """
    return {
        "tenant": tenant,
        "status": ReferralStatus.SUBMITTED.value,
        "submitted_at": {"$lte": now - timedelta(seconds=after_s)},
        "$or": [{"next_reconcile_at": None}, {"next_reconcile_at": {"$lte": now}}],
        "reconciliation_given_up_at": None,
    }


def stuck_filter(*, tenant: str) -> Document:
    """Referrals reconciliation gave up on that are still without a decision."""
    return {
        "tenant": tenant,
        "status": ReferralStatus.SUBMITTED.value,
        "reconciliation_given_up_at": {"$ne": None},
    }


def backoff_s(*, after_s: float, attempts: int, max_backoff_s: float) -> float:
    """The wait after the `attempts`-th re-publication: `after_s`, doubling each time, capped."""
    return min(after_s * 2.0 ** (attempts - 1), max_backoff_s)


async def find_due(*, runtime: Runtime, now: datetime, limit: int = BATCH_SIZE) -> list[Document]:
    """The oldest undecided referrals due for re-publication (ids, event ids and attempts only)."""
    settings = runtime.settings
    query = due_filter(tenant=settings.tenant, now=now, after_s=settings.reconcile_after_s)
    cursor = (
        runtime.db[REFERRALS]
        .find(query, {"_id": 1, "submitted_event_id": 1, "reconciliations": 1})
        .sort("submitted_at", 1)
        .limit(limit)
    )
    return await cursor.to_list()


async def reconcile_once(*, runtime: Runtime, now: datetime | None = None) -> int:
    """One round: claim each due referral and re-queue its submitted event, or give it up once it
    had its attempts; returns how many were claimed."""
    now = now or datetime.now(UTC)
    republished = given_up = 0
    for candidate in await find_due(runtime=runtime, now=now):
        if candidate.get("reconciliations", 0) >= runtime.settings.reconcile_max_attempts:
            given_up += await _give_up(runtime, candidate, now)
        elif await runtime.transaction(partial(_claim, runtime, candidate, now)):
            republished += 1
    if republished:
        log.info("re-published the submitted events of undecided referrals", count=republished)
    return republished + given_up


async def _claim(runtime: Runtime, candidate: Document, now: datetime, session: Session) -> bool:
    """Mark the referral re-published and re-queue its event, if it is still due: another replica,
    or routing's decision, may have got there first."""
    settings = runtime.settings
    due = due_filter(tenant=settings.tenant, now=now, after_s=settings.reconcile_after_s)
    attempts = candidate.get("reconciliations", 0) + 1
    wait_s = backoff_s(
        after_s=settings.reconcile_after_s, attempts=attempts, max_backoff_s=settings.reconcile_max_backoff_s
    )
    result = await runtime.db[REFERRALS].update_one(
        {"_id": candidate["_id"], **due},
        {
            "$set": {"next_reconcile_at": now + timedelta(seconds=wait_s)},
            "$inc": {"reconciliations": 1},
        },
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


async def _give_up(runtime: Runtime, candidate: Document, now: datetime) -> bool:
    """Stop re-publishing a referral that had all its attempts: logged once, by the replica whose
    conditional update marks it."""
    settings = runtime.settings
    due = due_filter(tenant=settings.tenant, now=now, after_s=settings.reconcile_after_s)
    result = await runtime.db[REFERRALS].update_one(
        {"_id": candidate["_id"], **due}, {"$set": {"reconciliation_given_up_at": now}}
    )
    if result.modified_count != 1:
        return False
    log.error(
        "gave up re-publishing an undecided referral's submitted event: see docs/operations.md, stuck referrals",
        referral_id=candidate["_id"],
        event_id=candidate.get("submitted_event_id"),
        attempts=candidate.get("reconciliations", 0),
    )
    return True


async def count_stuck(*, runtime: Runtime) -> int:
    return await runtime.db[REFERRALS].count_documents(stuck_filter(tenant=runtime.settings.tenant))


class Reconciler:
    """The background job: a round every `SIGNPOST_RECONCILE_INTERVAL_S`, at once again while rounds are full;
    after each, the stuck count for /metrics."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self._stuck = Gauge(
            "signpost_reconciliation_stuck_referrals",
            "Undecided referrals whose submitted event reconciliation stopped re-publishing "
            "(SIGNPOST_RECONCILE_MAX_ATTEMPTS); updated each round.",
            registry=runtime.metrics.registry,
        )

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._runtime.settings.reconcile_interval_s)
            try:
                while await reconcile_once(runtime=self._runtime) == BATCH_SIZE:
                    pass
                self._stuck.set(await count_stuck(runtime=self._runtime))
            except Exception as exc:  # MongoDB away: try again next round
                log.warning("reconciliation round failed; will retry", error=repr(exc))
