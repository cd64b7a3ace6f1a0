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


async def rebuild(
    settings: Settings, *, progress: Callable[[int], None] | None = None, compare: bool = True
) -> RebuildReport:
    client = create_client(settings)
    db = client[settings.database_name("analytics")]
    name = f"r{datetime.now(UTC):%Y%m%d%H%M%S}{secrets.token_hex(2)}"
    target = ProjectionSet(name)
    try:
        await start_building(db, name)
        try:
            await create_indexes(db, target)
            events, skipped = await _replay(settings, db=db, target=target, client=client, progress=progress)
            comparison = await compare_sets(db, target, (await read_pointer(db)).active) if compare else None
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
) -> tuple[int, int]:
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
