"""Waiting times learnt from the loop, rather than only typed into the catalogue.

- An observed wait is the time from the agency accepting an offer (`offer_accepted.v1`)
  to the support starting (`offer_started.v1`), in weeks: the child's time on that
  provision's waiting list. Both timestamps are the agency's own moves, as intake
  recorded them.
- A provision's current waiting time is the median of its last `SAMPLE` observed waits,
  in whole weeks, once it has at least `MIN_SAMPLES` of them; until then the figure in
  the catalogue stands. A median, so one family's long wait for a holiday does not move
  it; the last few, so it follows a waiting list that grows or shrinks.
- The figure is public (catalogue, open data feed, events), and a median is one child's
  own wait: so no fewer children than analytics' small-number threshold, and no finer
  than a week.

Each start is handled once (its event id is recorded in the same transaction, in
`decisions.service.learn_waiting_time`, which skips a start or acceptance of an offer routing
never made), and a changed waiting time is stored with its `provision.changed.v1` event. A
referral's events may arrive out of order (each intake replica relays its own outbox): a start
that arrives before its acceptance is kept, and the wait is learnt when the acceptance arrives.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from datetime import datetime

from pymongo import ASCENDING, DESCENDING, IndexModel, ReturnDocument
from signpost.routing.catalogue.models import MAX_WAITING_WEEKS, PROVISIONS
from signpost.routing.catalogue.repository import from_document
from signpost.routing.catalogue.service import provision_changed
from signpost.shared.events import OfferAcceptedV1, OfferStartedV1
from signpost.shared.logging import get_logger
from signpost.shared.mongo import Document, Session, find_by_ids
from signpost.shared.service import Runtime
from signpost.shared.vocabulary import SMALL_NUMBER_THRESHOLD

log = get_logger(__name__)

WAITS = "waits"
WAITS_INDEXES = [IndexModel([("provision_id", ASCENDING), ("started_at", DESCENDING)])]
SAMPLE = 10
MIN_SAMPLES = SMALL_NUMBER_THRESHOLD
WEEK_S = 7 * 24 * 3600


def observed_wait_weeks(accepted_at: datetime, started_at: datetime) -> float:
    """Weeks from acceptance to start; never negative (two clocks may disagree by moments)."""
    return max(0.0, (started_at - accepted_at).total_seconds() / WEEK_S)


def current_waiting_weeks(recent_waits: Sequence[float]) -> float | None:
    """The waiting time to publish from observed waits, newest first; None while there are too few."""
    waits = recent_waits[:SAMPLE]
    if len(waits) < MIN_SAMPLES:
        return None
    return float(min(MAX_WAITING_WEEKS, math.floor(statistics.median(waits) + 0.5)))


async def note_accepted(*, runtime: Runtime, accepted: OfferAcceptedV1, session: Session) -> None:
    """Start the clock on a wait, in the caller's transaction (the first acceptance counts); when
    the start arrived first, the wait is learnt now."""
    key = offer_key(accepted.referral_id, accepted.provision_id)
    wait = await runtime.db[WAITS].find_one({"_id": key}, session=session)
    if wait is None:
        await runtime.db[WAITS].insert_one(
            {
                "_id": key,
                "provision_id": accepted.provision_id,
                "referral_id": accepted.referral_id,
                "accepted_at": accepted.at,
            },
            session=session,
        )
    elif wait.get("accepted_at") is None:  # its start came first, and waits for this
        await _learn(
            runtime,
            {**wait, "accepted_at": accepted.at},
            started_at=wait["started_at"],
            session=session,
        )


async def accepted_offers(
    runtime: Runtime, offers: Iterable[tuple[str, str]], *, session: Session
) -> list[tuple[str, str]]:
    """Which of these (referral id, provision id) offers an agency accepted: each acceptance routing
    handled started a wait here, kept once the support starts or ends."""
    found = await find_by_ids(
        runtime.db[WAITS],
        [offer_key(referral_id, provision_id) for referral_id, provision_id in offers],
        session=session,
        projection={"referral_id": 1, "provision_id": 1},
    )
    return [(wait["referral_id"], wait["provision_id"]) for wait in found.values()]


async def note_started(*, runtime: Runtime, started: OfferStartedV1, session: Session) -> None:
    """Record the wait a started offer ended, in the caller's transaction (which records the event
    as handled, and has checked that routing made the offer: `decisions.service.learn_waiting_time`),
    and update its provision's current waiting time."""
    key = offer_key(started.referral_id, started.provision_id)
    wait = await runtime.db[WAITS].find_one({"_id": key}, session=session)
    if wait is None:  # its acceptance has not arrived (out of order): it learns the wait then
        await runtime.db[WAITS].insert_one(
            {
                "_id": key,
                "provision_id": started.provision_id,
                "referral_id": started.referral_id,
                "started_at": started.at,
            },
            session=session,
        )
        log.info("start before its acceptance; wait learnt when it arrives", referral_id=started.referral_id)
    elif wait.get("started_at") is not None:
        log.info("start seen before; no wait learnt", referral_id=started.referral_id)
    else:
        await _learn(runtime, wait, started_at=started.at, session=session)


async def _learn(runtime: Runtime, wait: Document, *, started_at: datetime, session: Session) -> None:
    """Record a wait that both its acceptance and its start have now reached, and update its
    provision's current waiting time."""
    provision_id = wait["provision_id"]
    weeks = observed_wait_weeks(wait["accepted_at"], started_at)
    await runtime.db[WAITS].update_one(
        {"_id": wait["_id"]},
        {"$set": {"accepted_at": wait["accepted_at"], "started_at": started_at, "weeks": weeks}},
        session=session,
    )
    recent = (
        await runtime.db[WAITS]
        .find(
            # a start still waiting for its acceptance has no wait yet
            {"provision_id": provision_id, "started_at": {"$ne": None}, "weeks": {"$ne": None}},
            {"weeks": 1},
            session=session,
        )
        .sort("started_at", DESCENDING)
        .limit(SAMPLE)
        .to_list()
    )
    current = current_waiting_weeks([w["weeks"] for w in recent])
    if current is None:
        return
    changed = await runtime.db[PROVISIONS].find_one_and_update(
        {"_id": provision_id, "waiting_weeks": {"$ne": current}},
        {"$set": {"waiting_weeks": current}},
        return_document=ReturnDocument.AFTER,
        session=session,
    )
    if changed is not None:  # None: already that figure, or no such provision
        await provision_changed(
            runtime=runtime, provision=from_document(changed), change="updated", session=session
        )
        log.info("waiting time learnt", provision_id=provision_id, waiting_weeks=current)


def offer_key(referral_id: str, provision_id: str) -> str:
    """The id of what routing records about one offer: its wait here, its reservation
    (`decisions.service`)."""
    return f"{referral_id}:{provision_id}"
