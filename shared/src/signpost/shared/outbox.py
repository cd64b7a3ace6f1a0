"""Transactional outbox: an event is stored with the change that caused it, then relayed.

A service writes its change and `stage_event` in one MongoDB transaction, so either
both happen or neither does. The relay publishes pending events to Kafka and marks
them published; while Kafka is away the events simply wait, and the service keeps
accepting work.

Every database command is a round trip that costs both sides CPU, so the relay avoids
reading back what it already knows: a transaction run through `transaction_with_events`
hands the relay the events it staged once it commits, and the relay publishes them
straight away, in its own process's commit order. That order holds per relay only, not
across replicas: each replica runs its own relay, and one backing off after a failed
publish can send an event after another replica's relay sent a later one of the same
referral; past `MAX_HANDED` (Kafka away a while) a relay drops what it was handed and
polls, which can reorder too. Consumers deduplicate by event id and tolerate a
referral's events out of order (docs/operations.md, "Scaling"). Only
events it was not handed (left by a process that stopped first, queued again by
`restage_event`, or staged by another process) are found by polling. Publication is
marked in batches; a crash before the mark publishes those events once more, which
consumers deduplicate by event id.

An event is stored twice over: whole in `outbox`, which keeps every event as it went out
(changed only to note that it was queued again), and by id alone in `outbox_pending` until
it is published. Marking it published deletes that id. Updating the whole event in place
instead cost SecantusDB twice the CPU to mark it, a fifth more in all (bench/outbox_marks.py),
and every other write to the outbox waited while it ran.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from faststream.kafka import KafkaBroker
from pymongo import ASCENDING, DESCENDING, AsyncMongoClient, IndexModel, ReplaceOne
from signpost.shared.errors import describe_error
from signpost.shared.events import Envelope, first_event_id_at, kafka_key, to_kafka_headers, to_kafka_value
from signpost.shared.logging import get_logger
from signpost.shared.mongo import (
    Database,
    Document,
    IndexPlan,
    Session,
    drop_index_if_present,
    find_by_ids,
    in_transaction,
)
from signpost.shared.retention import ids_after, keep_pruning, prune_in_chunks

log = get_logger(__name__)

OUTBOX = "outbox"  # every staged event, whole and unchanged, kept a week for replays and inspection
PENDING = "outbox_pending"  # the ids of staged events not yet published
# Where a replay to a broker that lost its log has got to: a process stopped part-way resumes it,
# because by then its consumer has committed offsets on the new log and those no longer tell.
REPLAY = "outbox_replay"
REPLAY_ID = "replay"
# Event ids are UUIDv7, whose text sorts by time: the poll and the replay read ranges of `_id`.
# Retention reads staging times instead, by an index: SecantusDB's `_id` index serves equality
# only, so an `_id` range scans the whole outbox (a week of events) under its storage-wide lock,
# which stalled every service for seconds each pass (bench/retention_pass.py measures it).
PUBLISHED_RETENTION_S = 7 * 24 * 3600  # kept a week after staging, once published
OUTBOX_INDEXES = [IndexModel([("created_at", ASCENDING)])]
# Expiry used to be a TTL index. SecantusDB sweeps TTL indexes every minute by reading every
# document of the collection under its storage-wide lock, which stalled the whole platform for
# seconds at a time, longer as the outbox grew; `migrate` and start-up drop it.
RETIRED_OUTBOX_INDEXES = ["published_ttl"]
# Before `outbox_pending`, a pending event had a null `published_at`, read by this index. Intake and
# routing, starting where it exists, give those events their pending ids, then drop it (`adopt_legacy_pending`).
LEGACY_PENDING_INDEX = "published_at_1__id_1"
# Every service with an outbox gets these (`create_service_app`), so none can leave retention reading it whole.
OUTBOX_INDEX_PLAN = IndexPlan({OUTBOX: OUTBOX_INDEXES}, retired={OUTBOX: RETIRED_OUTBOX_INDEXES})

BATCH_SIZE = 200
MAX_BACKOFF_S = 5.0
MARK_INTERVAL_S = 0.25  # how long published events may wait to be marked, sharing updates
MARK_CHUNK = 20  # ids per marking update
MAX_HANDED = 10_000  # events handed over but not yet published (Kafka away): beyond this, poll instead
POLL_GRACE_S = 5.0  # a pending event older than this is one no relay is handling (or a re-queued one)
RECENT_IDS = 10_000  # ids published lately: a hand-off the poll beat to publication is skipped

T = TypeVar("T")


@dataclass
class Staged:
    """What a transaction staged: the outbox documents, and whether it queued published events again."""

    documents: list[Document] = field(default_factory=list)
    restaged: bool = False


# The attempt of `transaction_with_events` running in this task, if any.
_staging: ContextVar[Staged | None] = ContextVar("outbox_staging", default=None)


async def transaction_with_events(
    client: AsyncMongoClient[Document], work: Callable[[Session], Awaitable[T]]
) -> tuple[T, Staged]:
    """`in_transaction`, also returning what the committed attempt staged (a retried attempt
    starts afresh), for the relay to publish without reading it back."""
    staged = Staged()

    async def attempt(session: Session) -> T:
        staged.documents.clear()
        staged.restaged = False
        token = _staging.set(staged)
        try:
            return await work(session)
        finally:
            _staging.reset(token)

    return await in_transaction(client, attempt), staged


def outbox_document(topic: str, envelope: Envelope[Any]) -> dict[str, Any]:
    """An event as the outbox keeps it: what the relay sends to Kafka."""
    return {
        "_id": envelope.id,
        "topic": topic,
        "key": kafka_key(envelope),
        "headers": to_kafka_headers(envelope),
        "value": to_kafka_value(envelope),
        "created_at": datetime.now(UTC),
    }


async def stage_event(db: Database, *, topic: str, envelope: Envelope[Any], session: Session) -> None:
    await stage_events(db, topic=topic, envelopes=[envelope], session=session)


async def stage_events(
    db: Database, *, topic: str, envelopes: Sequence[Envelope[Any]], session: Session
) -> None:
    """Several events in two round trips, in order."""
    if envelopes:
        documents = [outbox_document(topic, envelope) for envelope in envelopes]
        await db[OUTBOX].insert_many(documents, session=session)
        await db[PENDING].insert_many([{"_id": document["_id"]} for document in documents], session=session)
        staging = _staging.get()
        if staging is not None:
            staging.documents.extend(documents)


async def restage_event(db: Database, *, event_id: str, session: Session) -> bool:
    """Queue an event that was already published to go out again, with its same id.

    For events that may have been lost downstream (say a broker that lost its log):
    consumers deduplicate by event id, so a second copy changes nothing. Returns False
    when the event is no longer in the outbox (published events expire after a week).
    """
    # Written, not only read: retention deleting it meanwhile conflicts with this transaction.
    kept = await db[OUTBOX].update_one(
        {"_id": event_id}, {"$set": {"restaged_at": datetime.now(UTC)}}, session=session
    )
    if kept.matched_count == 0:
        return False
    # Pending again, so out of retention's reach until it is published again.
    await db[PENDING].replace_one({"_id": event_id}, {}, upsert=True, session=session)
    staging = _staging.get()
    if staging is not None:
        staging.restaged = True  # the relay finds it by polling
    return True


async def prune_published(db: Database, *, before: datetime) -> int:
    """Delete the events staged before `before` and published since, a chunk at a time in id order
    (staging order), so no single delete holds the collection long; returns how many went. Found
    by their staging time's index: a pass with nothing due reads no event."""

    async def still_pending(session: Session, ids: list[str]) -> set[str]:
        return set(await find_by_ids(db[PENDING], ids, session=session, projection={"_id": 1}))

    return await prune_in_chunks(db, OUTBOX, {"created_at": {"$lt": before}}, spare=still_pending)


async def pending_count(db: Database) -> int:
    return await db[PENDING].count_documents({})


async def adopt_legacy_pending(db: Database) -> int:
    """An outbox written before `outbox_pending` existed: give each of its pending events (a null
    `published_at`) a pending id, then drop the index they were read by, whose absence says this
    is done. Returns how many were pending. Run at start-up, before the relay; replicas starting
    together adopt the same events, idempotently. An event published meanwhile by a relay of the
    earlier version and adopted anyway goes out once more, which consumers skip."""
    present = {index["name"] async for index in await db[OUTBOX].list_indexes()}
    if LEGACY_PENDING_INDEX not in present:
        return 0
    adopted, after = 0, None
    while ids := await ids_after(db[OUTBOX], after, {"published_at": None}):
        after = ids[-1]
        await db[PENDING].bulk_write([ReplaceOne({"_id": event_id}, {}, upsert=True) for event_id in ids])
        adopted += len(ids)
    await drop_index_if_present(db[OUTBOX], LEGACY_PENDING_INDEX)
    if adopted:
        log.info("pending events of an earlier outbox adopted", count=adopted)
    return adopted


class OutboxRelay:
    """Publishes staged events: those handed over by `committed()` at once, the rest by polling every
    `poll_interval_s` (sooner after `notify()`). A second loop marks them published every
    `mark_interval_s`, so publication never waits for the database to take the marks."""

    def __init__(
        self,
        *,
        db: Database,
        broker: KafkaBroker,
        poll_interval_s: float,
        mark_interval_s: float = MARK_INTERVAL_S,
    ) -> None:
        self._db = db
        self._broker = broker
        self._poll_interval_s = poll_interval_s
        self._mark_interval_s = mark_interval_s
        self._wake = asyncio.Event()
        self._handed: deque[Document] = deque()  # committed, not yet published, in commit order
        self._unmarked: list[str] = []  # published, not yet marked (or being marked)
        self._recent: OrderedDict[str, None] = OrderedDict()
        self._poll_due = True  # the first round finds what an earlier run left,
        self._poll_all = True  # however recent
        self._poll_after: str | None = None  # a poll pass reads on from this id (its last full page)
        self._replay_after: str | None = None  # set: events published before are sent again from here
        self._replay_run = ""  # which replay this is (a later loss of the log starts another)
        self._replay_until: str | None = None  # the newest event kept when it began (None: no bound)
        # Held by each publishing round, and by a replay while the service runs: each referral's
        # events then reach the new log in staging order, the replayed ones first.
        self._sending = asyncio.Lock()
        self._polled_at = time.monotonic()

    def committed(self, staged: Staged) -> None:
        """After a commit: publish what it staged now, and poll for what it queued again."""
        if len(self._handed) + len(staged.documents) > MAX_HANDED:
            # Kafka has been away a while: stop holding copies; the poll finds them in the outbox.
            self._handed.clear()
            self._poll_due = self._poll_all = True
        else:
            self._handed.extend(staged.documents)
        self._poll_due = self._poll_due or staged.restaged
        self._wake.set()

    def notify(self) -> None:
        """Events were staged that were not handed over: poll now, for them too, rather than wait."""
        self._poll_due = self._poll_all = True
        self._wake.set()

    async def prepare_replay(self, *, log_lost: bool) -> None:
        """Call before `run`. When the broker has lost its log, the relay first sends again every
        event kept here as published (a week's worth), oldest first, so each consumer gets what it
        missed; what it already had it skips by event id. It ends at the newest event kept when
        it began: what is staged later goes out as pending, once (a fresh deployment's consumer
        group has no offsets either, and its first requests must not go out twice). A replay that
        an earlier run of this service (any replica) left unfinished goes on from its last page."""
        replays = self._db[REPLAY]
        if log_lost:
            newest = await self._db[OUTBOX].find_one({}, {"_id": 1}, sort=[("_id", DESCENDING)])
            run = {
                "run": uuid.uuid4().hex,
                "after": "",
                "until": newest["_id"] if newest is not None else "",  # "": nothing to send
                "started_at": datetime.now(UTC),
            }
            await replays.replace_one({"_id": REPLAY_ID}, run, upsert=True)
        unfinished = await replays.find_one({"_id": REPLAY_ID})
        if unfinished is not None:
            self._replay_run, self._replay_after = unfinished["run"], unfinished["after"]
            self._replay_until = unfinished.get("until")  # absent: begun by an earlier release

    async def replay_lost_log(self) -> None:
        """While running: the broker has lost its log (`signpost.shared.logwatch`). Send again every
        event kept here, as `prepare_replay` does at start-up, before publishing anything new."""
        async with self._sending:
            await self.prepare_replay(log_lost=True)
            await self._replay()

    async def run(self) -> None:
        async with self._sending:
            await self._replay()
        async with asyncio.TaskGroup() as loops:
            loops.create_task(self._keep_publishing())
            loops.create_task(self._keep_marking())
            loops.create_task(self._keep_pruning())

    async def flush(self, *, timeout_s: float) -> None:
        """At shutdown: publish and mark what is pending within `timeout_s`; anything left goes at
        the next start."""
        self._poll_due = self._poll_all = True
        try:
            async with asyncio.timeout(timeout_s):
                while await self._publish_round():
                    pass
                await self._mark()
        except Exception as exc:  # Kafka away or out of time: the events stay staged, nothing is lost
            log.warning(
                "outbox not flushed before stopping; pending events go at the next start",
                error=describe_error(exc),
            )

    async def _keep_publishing(self) -> None:
        backoff = 0.0
        while True:
            # Cleared before the round: a commit during it wakes the next one.
            self._wake.clear()
            try:
                async with self._sending:
                    more = await self._publish_round()
                backoff = 0.0
            except Exception as exc:
                backoff = min(MAX_BACKOFF_S, backoff * 2 or 0.25)
                log.warning(
                    "outbox relay cannot publish yet; retrying", error=describe_error(exc), retry_in_s=backoff
                )
                await asyncio.sleep(backoff)
                continue
            if more:
                continue
            until_poll = max(0.0, self._polled_at + self._poll_interval_s - time.monotonic())
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow the cancellation
            # that stops the service when the wake-up lands at the same moment, hanging shutdown.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(until_poll):
                    await self._wake.wait()

    async def _replay(self) -> None:
        """Send again every event kept, by id (staging order, so each referral's events keep theirs),
        in pages; those still pending go out once more when the relay publishes them. One query for
        the whole pass: SecantusDB sorts all of a query's matches before the first page, so a query
        per page would sort the outbox once a page. Kafka away: the pass goes on after the last page
        that went."""
        sent, backoff = 0, 0.0
        while self._replay_after is not None:
            bound = {} if self._replay_until is None else {"$lte": self._replay_until}
            query = {"_id": {"$gt": self._replay_after, **bound}}
            page: list[Document] = []
            try:
                async for document in (
                    self._db[OUTBOX].find(query).sort("_id", ASCENDING).batch_size(BATCH_SIZE)
                ):
                    page.append(document)
                    if len(page) == BATCH_SIZE:
                        await self._send(page)
                        sent, self._replay_after, page = sent + len(page), page[-1]["_id"], []
                        await self._replayed_up_to({"$set": {"after": self._replay_after}})
                await self._send(page)
                await self._replayed_up_to(None)
            except Exception as exc:
                backoff = min(MAX_BACKOFF_S, backoff * 2 or 0.25)
                log.warning(
                    "outbox replay cannot publish yet; retrying",
                    error=describe_error(exc),
                    retry_in_s=backoff,
                )
                await asyncio.sleep(backoff)
                continue
            sent, self._replay_after = sent + len(page), None
        if sent:
            log.info("published events sent again to a broker that had lost its log", count=sent)

    async def _replayed_up_to(self, update: Document | None) -> None:
        """Record the replay's progress (None: it is done), unless a later loss of the log has
        started another replay meanwhile, which must not skip what this one sent before it."""
        this_run = {"_id": REPLAY_ID, "run": self._replay_run}
        if update is None:
            await self._db[REPLAY].delete_one(this_run)
        else:
            await self._db[REPLAY].update_one(this_run, update)

    async def _keep_marking(self) -> None:
        while True:
            await asyncio.sleep(self._mark_interval_s)
            try:
                await self._mark()
            except Exception as exc:  # the marks wait; the poll leaves what this relay holds alone
                log.warning(
                    "outbox relay cannot mark published events yet; retrying", error=describe_error(exc)
                )

    async def _keep_pruning(self) -> None:
        async def prune() -> int:
            before = datetime.now(UTC) - timedelta(seconds=PUBLISHED_RETENTION_S)
            return await prune_published(self._db, before=before)

        await keep_pruning("published events", prune)

    async def _publish_round(self) -> bool:
        """Publish what was handed over, then poll when due; True when more is waiting."""
        await self._publish_handed()
        if not self._handed and (
            self._poll_due or time.monotonic() - self._polled_at >= self._poll_interval_s
        ):
            await self._publish_polled()
        return bool(self._handed) or self._poll_due

    async def _publish_handed(self) -> int:
        batch: list[Document] = []
        while self._handed and len(batch) < BATCH_SIZE:
            document = self._handed.popleft()
            if document["_id"] not in self._recent:  # else the poll published it first
                batch.append(document)
        try:
            await self._publish(batch)
        except BaseException:
            self._handed.extendleft(reversed(batch))  # keep them, in order, for the next round
            raise
        return len(batch)

    async def _publish_polled(self) -> int:
        """Publish a page of pending events this relay does not hold, oldest first: only those
        staged over `POLL_GRACE_S` ago (what no relay is handling), unless told of newer ones.

        The query never names the held ids: SecantusDB evaluates a `$nin` of a thousand ids in
        seconds, holding up every other command. Event ids are UUIDv7, whose text sorts by time,
        so "staged before" is a range of pending ids. A full page is followed by the next one,
        from its last id: reading the same page again would loop on events this relay holds
        while their marks wait (what made a busy intake poll nonstop)."""
        everything, self._poll_all = self._poll_all, False
        self._poll_due = False
        self._polled_at = time.monotonic()
        held = {*self._unmarked, *(document["_id"] for document in self._handed)}
        ids: Document = {}
        if not everything:
            ids["$lt"] = first_event_id_at(time.time() - POLL_GRACE_S)
        if self._poll_after is not None:
            ids["$gt"] = self._poll_after
        query: Document = {"_id": ids} if ids else {}
        found = [
            document["_id"]
            async for document in self._db[PENDING].find(query).sort("_id", ASCENDING).limit(BATCH_SIZE)
        ]
        wanted = [event_id for event_id in found if event_id not in held]
        pending = await self._staged_events(wanted)
        await self._publish(pending)
        # A full page may have more behind it: the next round reads on from its last id.
        self._poll_after = found[-1] if len(found) == BATCH_SIZE else None
        self._poll_due = self._poll_after is not None
        self._poll_all = self._poll_due and everything
        return len(pending)

    async def _staged_events(self, ids: Sequence[str]) -> list[Document]:
        """The outbox's copies of these events, in id order."""
        found = list((await find_by_ids(self._db[OUTBOX], ids)).values())
        if lost := set(ids) - {document["_id"] for document in found}:
            # Pending ids whose events are gone: nothing can publish them. Never expected (retention
            # keeps pending events); dropped, so the poll does not read them again forever.
            log.error("pending events missing from the outbox; dropped", event_ids=sorted(lost))
            self._unmarked.extend(sorted(lost))
        return sorted(found, key=lambda document: str(document["_id"]))

    async def _publish(self, documents: Sequence[Document]) -> None:
        await self._send(documents)
        for doc in documents:
            self._unmarked.append(doc["_id"])
            self._recent[doc["_id"]] = None
        while len(self._recent) > RECENT_IDS:
            self._recent.popitem(last=False)

    async def _send(self, documents: Sequence[Document]) -> None:
        if not documents:
            return
        # Send the whole batch before awaiting acks: the producer keeps each partition's order.
        acks = [
            await self._broker.publish(
                doc["value"],
                doc["topic"],
                key=doc["key"].encode(),
                headers=doc["headers"],
                # FastStream's own `correlation_id` header, else a random one that disagrees with
                # ce_correlationid; from the stored headers, so a replay carries the same.
                correlation_id=doc["headers"]["ce_correlationid"],
                no_confirm=True,
            )
            for doc in documents
        ]
        await asyncio.gather(*acks)

    async def _mark(self) -> None:
        """Mark what was published by deleting its pending ids, a few per delete: SecantusDB holds
        every other write to the collection while a multi-document write runs, and its cost grows
        faster than the number of ids (it tests each document against the whole `$in` list).

        Each delete is a transaction of its own. Outside one, SecantusDB retries a write that
        conflicts with a transaction in flight itself, sleeping while it holds the collection; the
        transaction's next insert there then waits, and every other transaction on the server
        waits behind that one: seconds-long stalls of the whole platform, its CPU idle. Inside
        one, the conflict comes back to the driver, which retries with nothing held."""
        while self._unmarked:
            marking = self._unmarked[:MARK_CHUNK]  # still held (kept from the poll) until marked

            async def mark(session: Session, ids: list[str] = marking) -> None:
                await self._db[PENDING].delete_many({"_id": {"$in": ids}}, session=session)

            await in_transaction(self._db.client, mark)
            del self._unmarked[: len(marking)]
