"""Rebuild: replay the retained log into a fresh projection set and swap it in when caught up.

1. Name the new set in the pointer document: from its next batch on, the live
   consumer folds into it as well as into the active set (folds are idempotent).
2. Capture the high watermarks of every source partition — after step 1, so every
   event beyond them reaches the new set through the live consumer.
3. Read every partition from its beginning to its watermark, folding batches into
   the new set.
4. Unless told not to, compare it document by document with the active set (both
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

from aiokafka import TopicPartition
from pymongo import AsyncMongoClient
from pymongo.errors import PyMongoError
from signpost.analytics.projections.consumer import create_consumer, decode, source_topics
from signpost.analytics.projections.fold import fold_batch
from signpost.analytics.projections.sets import (
    ProjectionSet,
    abandon,
    create_indexes,
    drop_obsolete,
    owner,
    read_pointer,
    start_building,
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
            active = (await read_pointer(db)).active
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
    """Folds the log into `target`; with `whole_log`, refuses (before folding anything) a log
    that no longer starts at offset 0."""
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
        await consumer.seek_to_beginning(*partitions)
        pending = {partition for partition in partitions if ends[partition] > starts[partition]}
        events = skipped = 0
        # The live processes follow the new set too, so they read the change stream while this writes.
        lease = WriterLease(db)
        while pending:
            fetched = await consumer.getmany(
                *pending, timeout_ms=FETCH_TIMEOUT_MS, max_records=settings.analytics_batch_max
            )
            records = [
                record
                for partition, batch in fetched.items()
                for record in batch
                if record.offset < ends[partition]
            ]
            decoded, invalid = decode(records, max_bytes=settings.event_max_bytes)
            envelopes = [envelope for _, envelope in decoded]
            if envelopes:
                await _fold_with_retries(client, db, target=target, envelopes=envelopes, lease=lease)
            events, skipped = events + len(envelopes), skipped + len(invalid)
            if progress is not None and envelopes:
                progress(events)
            for partition in list(pending):
                # Positions, not record offsets: a compacted topic has gaps.
                if await consumer.position(partition) >= ends[partition]:
                    pending.discard(partition)
        await lease.release()
        return events, skipped
    finally:
        await consumer.stop()


def _truncated(starts: dict[TopicPartition, int]) -> str:
    """The partitions whose log no longer starts at offset 0, with where it starts; '' for none."""
    return ", ".join(
        f"{partition.topic}[{partition.partition}] (from offset {start})"
        for partition, start in sorted(starts.items())
        if start > 0
    )


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
) -> None:
    """The live consumer writes to the same set meanwhile: a batch that collides with it is folded again."""
    for attempt in range(1, FOLD_ATTEMPTS + 1):
        try:
            await fold_batch(client, db, target=target, envelopes=envelopes, lease=lease)
            return
        except PyMongoError:
            if attempt == FOLD_ATTEMPTS:
                raise
            log.warning("rebuild batch collided; folding it again", attempt=attempt)
            await asyncio.sleep(REFOLD_PAUSE_S * attempt)


async def projection_sets(db: Database) -> set[str]:
    """The names of the projection sets that have collections in the database, obsolete kinds included."""
    return {name for name in map(owner, await db.list_collection_names()) if name is not None}


async def drop_set(db: Database, name: str) -> None:
    target = ProjectionSet(name)
    for collection in [*target.collections(), *target.obsolete_collections()]:
        await db.drop_collection(collection)
