"""Rebuild: replay the retained log into a fresh projection set and swap it in when caught up.

1. Name the new set in the pointer document. The live consumer follows it (loads its
   index) but does not fold into it yet: a live event folded ahead of the replay would
   reach a referral's fact before its earlier events, and the fold follows log order.
2. Capture the high watermarks of every source partition, and read every partition
   from its beginning to its watermark, folding batches into the new set. Each batch
   also records, in its transaction, how far into each partition of the referrals topic
   the set has been folded (sets.py, "positions").
3. Catch up: measure the ends again and fold what arrived meanwhile, a few times while
   much did; then hand the set over (`hand_over`): from its next batch on, the live
   consumer folds into it too, but each partition only from where the set has got,
   waiting for the replay if its batch starts further on.
4. Measure the ends once more and fold up to them. Whatever the live consumer folded into
   the active set alone, it had read before it read the pointer that handed over, so it
   lies below these ends: the new set then holds everything the active one does, folded
   in log order, and the live consumer carries on from there.
5. Unless told not to, compare it document by document with the active set (both
   still receive every live event), then make it active in one update of the
   pointer document.

Unless forced, a rebuild that would lose data swaps nothing: when a partition's log
no longer starts at offset 0 (checked before replaying), or when the active set holds
documents the rebuilt one lacks (the events they were folded from are gone: a broker
that lost its log, say). The log is the truth only while it holds everything.

Nothing here depends on the old projections: only the log. The set replaced is kept
(for comparison or to swap back by hand); older ones are dropped, and so is every
collection of a kind earlier releases kept and nothing reads any more.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer, TopicPartition
from pymongo import AsyncMongoClient
from pymongo.errors import PyMongoError
from signpost.analytics.projections.consumer import create_consumer, decode, ordered_topics, source_topics
from signpost.analytics.projections.fold import fold_batch
from signpost.analytics.projections.sets import (
    ProjectionSet,
    RebuildAbandoned,
    Spans,
    abandon,
    abandon_building,
    create_indexes,
    drop_obsolete,
    drop_positions,
    hand_over,
    owner,
    read_pointer,
    start_building,
    start_positions,
    swap_in,
)
from signpost.analytics.projections.writers import WriterLease
from signpost.analytics.rebuild.compare import Comparison, compare_sets
from signpost.shared.events import Envelope, EventData
from signpost.shared.logging import get_logger
from signpost.shared.mongo import Database, Document, create_client
from signpost.shared.offsets import StreamInspector, Watermarks
from signpost.shared.settings import Settings
from signpost.shared.topics import Topics

FETCH_TIMEOUT_MS = 1000
FOLD_ATTEMPTS = 5
REFOLD_PAUSE_S = 0.5  # times the attempt: the live consumer's batch is usually done by then
# Catching up before the hand-over: the ends are measured again and folded up to while a round
# folded more than HAND_OVER_WITHIN events, at most CATCH_UP_ROUNDS times. After the hand-over, the
# live consumer's batches wait for the replay to fold what arrived during the last round.
CATCH_UP_ROUNDS = 5
HAND_OVER_WITHIN = 1000

log = get_logger(__name__)


@dataclass(frozen=True)
class RebuildReport:
    active: str
    replaced: str
    events: int
    skipped: int  # records that are not valid events (the live consumer dead-lettered them)
    dropped: list[str]  # older sets, then obsolete collections of the sets kept
    comparison: Comparison | None  # the rebuilt set against the one it replaced, just before the swap


class IncompleteLog(RuntimeError):
    """The log lacks events the active set was folded from: nothing was swapped."""

    def __init__(self, reason: str, *, comparison: Comparison | None = None) -> None:
        super().__init__(reason)
        self.comparison = comparison


async def rebuild(
    settings: Settings,
    *,
    progress: Callable[[int], None] | None = None,
    compare: bool = True,
    force: bool = False,
) -> RebuildReport:
    """Raises IncompleteLog, unless `force`, when swapping in would lose data (see above)."""
    client = create_client(settings)
    db = client[settings.database_name("analytics")]
    name = f"r{datetime.now(UTC):%Y%m%d%H%M%S}{secrets.token_hex(2)}"
    target = ProjectionSet(name)
    try:
        await start_building(db, name)
        try:
            await create_indexes(db, target)
            events, skipped = await _replay(
                settings, db=db, target=target, client=client, progress=progress, whole_log=not force
            )
            pointer = await read_pointer(db)
            if pointer.building != target:  # a live consumer waited too long for it, or by hand
                raise RebuildAbandoned(name)
            active = pointer.active
            comparison = await compare_sets(db, target, active) if compare else None
            if comparison is not None and comparison.only_in_active and not force:
                raise IncompleteLog(
                    f"the log no longer holds every event the active set {active.name!r} was folded "
                    f"from: {comparison.only_in_active} of its documents are missing from the rebuilt set",
                    comparison=comparison,
                )
            replaced = await swap_in(db, name)
        except BaseException:
            await abandon(db, name)
            await drop_set(db, name)
            raise
        dropped = sorted(await projection_sets(db) - {name, replaced})
        for stale in dropped:
            await drop_set(db, stale)
        dropped += await drop_obsolete(db)  # what earlier releases kept beside the set replaced
        return RebuildReport(
            active=name,
            replaced=replaced,
            events=events,
            skipped=skipped,
            dropped=dropped,
            comparison=comparison,
        )
    finally:
        await client.close()


async def _replay(
    settings: Settings,
    *,
    db: Database,
    target: ProjectionSet,
    client: AsyncMongoClient[Document],
    progress: Callable[[int], None] | None,
    whole_log: bool,
) -> tuple[int, int]:
    """Folds the log into `target`, then hands it over to the live consumer (see above); with
    `whole_log`, refuses (before folding anything) a log that no longer starts at offset 0."""
    consumer = create_consumer(settings, group=None)
    await consumer.start()
    try:
        await consumer.topics()  # loads the cluster metadata partitions_for_topic reads
        partitions = [
            TopicPartition(topic, partition)
            for topic in source_topics(Topics.from_settings(settings))
            for partition in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        consumer.assign(partitions)
        # The real ends: Tansu's ListOffsets hides all but the first record of a partition's last batch.
        watermarks = await _watermarks(settings, partitions)
        ends = {partition: marks.high for partition, marks in watermarks.items()}
        starts = {partition: marks.low for partition, marks in watermarks.items()}
        if whole_log and (truncated := _truncated(starts)):
            raise IncompleteLog(
                f"the log no longer starts at offset 0 on {truncated}: the events before are gone"
            )
        ordered = set(ordered_topics(Topics.from_settings(settings)))
        await start_positions(
            db, target, {key: start for key, start in starts.items() if key.topic in ordered}
        )
        # The live processes follow the new set too, so they read the change stream while this writes.
        replay = _Replay(
            settings,
            consumer=consumer,
            client=client,
            db=db,
            target=target,
            ordered=ordered,
            done=starts,
            progress=progress,
        )
        await replay.up_to(ends)
        for _ in range(CATCH_UP_ROUNDS):  # what arrived meanwhile, while that is much
            if await replay.up_to(await _ends(settings, partitions)) <= HAND_OVER_WITHIN:
                break
        await hand_over(db, target.name)
        # The live consumer reads the pointer after fetching a batch: what it folded into the active
        # set alone was on the log before the hand-over, so below these ends.
        await replay.up_to(await _ends(settings, partitions))
        await replay.lease.release()
        return replay.events, replay.skipped
    finally:
        await consumer.stop()


class _Replay:
    """Reads the source partitions in order, each from where the set has got (`done`), folding
    every batch into the set with the span of each ordered partition it covers."""

    def __init__(
        self,
        settings: Settings,
        *,
        consumer: AIOKafkaConsumer,
        client: AsyncMongoClient[Document],
        db: Database,
        target: ProjectionSet,
        ordered: set[str],
        done: dict[TopicPartition, int],
        progress: Callable[[int], None] | None,
    ) -> None:
        self.settings, self.consumer, self.client, self.db = settings, consumer, client, db
        self.target, self.ordered, self.done, self.progress = target, ordered, dict(done), progress
        self.lease = WriterLease(db)
        self.events = self.skipped = 0

    async def up_to(self, ends: dict[TopicPartition, int]) -> int:
        """Fold every partition up to its end in `ends`; returns how many events that was."""
        before = self.events
        pending = {partition for partition, end in ends.items() if end > self.done[partition]}
        for partition in pending:
            # A batch may have read past the last end: the records beyond it were not folded.
            self.consumer.seek(partition, self.done[partition])
        while pending:
            fetched = await self.consumer.getmany(
                *pending, timeout_ms=FETCH_TIMEOUT_MS, max_records=self.settings.analytics_batch_max
            )
            records = [
                record
                for partition, batch in fetched.items()
                for record in batch
                if record.offset < ends[partition]
            ]
            # Positions, not record offsets: a compacted topic has gaps, control records take offsets.
            reached = {
                partition: min(await self.consumer.position(partition), ends[partition])
                for partition in pending
            }
            spans: Spans = {
                (partition.topic, partition.partition): (self.done[partition], end)
                for partition, end in reached.items()
                if partition.topic in self.ordered and end > self.done[partition]
            }
            decoded, invalid = decode(records, max_bytes=self.settings.event_max_bytes)
            envelopes = [envelope for _, envelope in decoded]
            if envelopes or spans:
                await _fold_with_retries(
                    self.client,
                    self.db,
                    target=self.target,
                    envelopes=envelopes,
                    lease=self.lease,
                    spans=spans,
                )
            self.events, self.skipped = self.events + len(envelopes), self.skipped + len(invalid)
            if self.progress is not None and envelopes:
                self.progress(self.events)
            self.done.update(reached)
            pending = {partition for partition in pending if self.done[partition] < ends[partition]}
            if (await read_pointer(self.db)).building != self.target:  # given up: stop folding into it
                raise RebuildAbandoned(self.target.name)
        return self.events - before


def _truncated(starts: dict[TopicPartition, int]) -> str:
    """The partitions whose log no longer starts at offset 0, with where it starts; '' for none."""
    return ", ".join(
        f"{partition.topic}[{partition.partition}] (from offset {start})"
        for partition, start in sorted(starts.items())
        if start > 0
    )


async def _ends(settings: Settings, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
    return {partition: marks.high for partition, marks in (await _watermarks(settings, partitions)).items()}


async def _watermarks(
    settings: Settings, partitions: list[TopicPartition]
) -> dict[TopicPartition, Watermarks]:
    inspector = StreamInspector(settings)
    await inspector.start()
    try:
        return await inspector.watermarks(partitions)
    finally:
        await inspector.close()


async def _fold_with_retries(
    client: AsyncMongoClient[Document],
    db: Database,
    *,
    target: ProjectionSet,
    envelopes: list[Envelope[EventData]],
    lease: WriterLease,
    spans: Spans,
) -> None:
    """After the hand-over the live consumer writes to the same set: a batch that collides with it is
    folded again."""
    for attempt in range(1, FOLD_ATTEMPTS + 1):
        try:
            await fold_batch(client, db, target=target, envelopes=envelopes, lease=lease, in_order=spans)
            return
        except PyMongoError:
            if attempt == FOLD_ATTEMPTS:
                raise
            log.warning("rebuild batch collided; folding it again", attempt=attempt)
            await asyncio.sleep(REFOLD_PAUSE_S * attempt)


async def projection_sets(db: Database) -> set[str]:
    """The names of the projection sets that have collections in the database, obsolete kinds included."""
    return {name for name in map(owner, await db.list_collection_names()) if name is not None}


async def abandon_rebuild(settings: Settings) -> str | None:
    """Give up and drop the set being built, whoever is building it (`sets.abandon_building`)."""
    client = create_client(settings)
    try:
        db = client[settings.database_name("analytics")]
        name = await abandon_building(db)
        if name is not None:
            await drop_set(db, name)
        return name
    finally:
        await client.close()


async def drop_set(db: Database, name: str) -> None:
    target = ProjectionSet(name)
    for collection in [*target.collections(), *target.obsolete_collections()]:
        await db.drop_collection(collection)
    await drop_positions(db, name)
