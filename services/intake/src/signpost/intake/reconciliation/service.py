"""Find referrals still waiting for routing's decision and publish their submitted event again.

An event can be lost after intake published it: a broker that lost its log on
restart (the embedded Tansu keeps it in memory), or a consumer bug fixed since.
Intake owns the referral, so intake notices the silence. It re-queues the very
same event (same id) through the outbox: a consumer that already handled it
skips it, and routing keeps one decision per referral and announces it again.

Several intake replicas may run this job: each referral is claimed with a
conditional update on its re-publication count, so one replica re-publishes it per round.

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
from signpost.shared.errors import describe_error
from signpost.shared.lifecycle import ReferralStatus
from signpost.shared.logging import get_logger
from signpost.shared.mongo import Document, Session
from signpost.shared.outbox import restage_event
from signpost.shared.service import Runtime

log = get_logger(__name__)

# What a round reads of each undecided referral: enough to tell whether it is due and to claim it.
UNDECIDED_FIELDS = {
    "_id": 1,
    "submitted_event_id": 1,
    "reconciliations": 1,
    "next_reconcile_at": 1,
    "reconciliation_given_up_at": 1,
}


def undecided_filter(*, tenant: str, before: datetime) -> Document:
    """The area's referrals still `submitted` that were submitted at or before `before`.

    Safeguarding referrals are escalated when submitted, so they never match. The filter holds
    exactly the referrals index's fields (tenant, status, submitted_at) and nothing beside them:
    SecantusDB walks an index only for a filter of its leading fields. With the backoff and
    given-up conditions beside them it read every referral under its storage lock, each round and
    again for the stuck count, which held every service's commands for seconds at 75,000 referrals
    (`bench/e2e.py`: intake and routing both stopped for 10-14 s every 70 s). Those conditions are
    tested here instead, on the few referrals still undecided."""
    return {"tenant": tenant, "status": ReferralStatus.SUBMITTED.value, "submitted_at": {"$lte": before}}


def is_due(referral: Document, *, now: datetime) -> bool:
    """Not given up on, and any wait after its last re-publication has run out."""
    waits_until = referral.get("next_reconcile_at")
    return referral.get("reconciliation_given_up_at") is None and (waits_until is None or waits_until <= now)


def unchanged_since_read(referral: Document) -> Document:
    """A referral as it was read, for a conditional update: still undecided, not given up on, and
    re-published no further meanwhile (by another replica)."""
    return {
        "_id": referral["_id"],
        "status": ReferralStatus.SUBMITTED.value,
        "reconciliations": referral.get("reconciliations"),  # None matches a referral never re-published
        "reconciliation_given_up_at": None,
    }


def backoff_s(*, after_s: float, attempts: int, max_backoff_s: float) -> float:
    """The wait after the `attempts`-th re-publication: `after_s`, doubling each time, capped."""
    return min(after_s * 2.0 ** (attempts - 1), max_backoff_s)


async def undecided(*, runtime: Runtime, now: datetime) -> list[Document]:
    """The referrals still undecided `SIGNPOST_RECONCILE_AFTER_S` after submission, oldest first.
    All of them in one read: normally none, and a handful of fields each after a broker loss."""
    settings = runtime.settings
    before = now - timedelta(seconds=settings.reconcile_after_s)
    cursor = (
        runtime.db[REFERRALS]
        .find(undecided_filter(tenant=settings.tenant, before=before), UNDECIDED_FIELDS)
        .sort("submitted_at", 1)
    )
    return await cursor.to_list()


async def find_due(*, runtime: Runtime, now: datetime) -> list[Document]:
    """The undecided referrals due for re-publication, oldest first."""
    return [referral for referral in await undecided(runtime=runtime, now=now) if is_due(referral, now=now)]


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
    """Mark the referral re-published and re-queue its event, if it is as this round read it:
    another replica, or routing's decision, may have got there first."""
    settings = runtime.settings
    attempts = candidate.get("reconciliations", 0) + 1
    wait_s = backoff_s(
        after_s=settings.reconcile_after_s, attempts=attempts, max_backoff_s=settings.reconcile_max_backoff_s
    )
    result = await runtime.db[REFERRALS].update_one(
        unchanged_since_read(candidate),
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
    result = await runtime.db[REFERRALS].update_one(
        unchanged_since_read(candidate), {"$set": {"reconciliation_given_up_at": now}}
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


async def count_stuck(*, runtime: Runtime, now: datetime | None = None) -> int:
    """Undecided referrals reconciliation gave up on (each was undecided past the age first)."""
    found = await undecided(runtime=runtime, now=now or datetime.now(UTC))
    return sum(1 for referral in found if referral.get("reconciliation_given_up_at") is not None)


class Reconciler:
    """The background job: a round every `SIGNPOST_RECONCILE_INTERVAL_S`; after each, the stuck
    count for /metrics."""

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
                await reconcile_once(runtime=self._runtime)
                self._stuck.set(await count_stuck(runtime=self._runtime))
            except Exception as exc:  # MongoDB away: try again next round
                log.warning("reconciliation round failed; will retry", error=describe_error(exc))
