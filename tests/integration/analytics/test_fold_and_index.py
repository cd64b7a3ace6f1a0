"""The fold and the in-memory index on a real MongoDB: cached copies that went stale, and
an index that follows writes made by another process."""

from __future__ import annotations

import asyncio
from datetime import date

import pytest
from pymongo import AsyncMongoClient
from signpost.analytics.projections.cache import WriteCache
from signpost.analytics.projections.facts import fact_id
from signpost.analytics.projections.fold import fold_batch
from signpost.analytics.projections.follower import FactsFollower, IndexLoading
from signpost.analytics.projections.index import Days, FactIndex
from signpost.analytics.projections.sets import INITIAL_SET, ProjectionSet
from signpost.analytics.projections.writers import WriterLease
from signpost.shared.mongo import Database, Document

from tests.analytics_events import TENANT, lifecycle
from tests.conftest import eventually

LIVE = ProjectionSet(INITIAL_SET)
MARCH: Days = (date(2026, 3, 1), date(2026, 3, 31))


async def test_a_cached_copy_another_writer_changed_is_folded_again_from_mongodb(
    mongo: tuple[AsyncMongoClient[Document], Database],
) -> None:
    client, db = mongo
    events = lifecycle("r1", "completed", child_ref="c1")
    cache, here, other = WriteCache(size=100), WriterLease(db), WriterLease(db)
    await fold_batch(client, db, target=LIVE, envelopes=events[:2], cache=cache, lease=here)
    # Another writer (a rebuild filling the same set, a replica after a rebalance) moves the fact on.
    await fold_batch(client, db, target=LIVE, envelopes=events[2:4], lease=other)
    folded = await fold_batch(client, db, target=LIVE, envelopes=events[4:], cache=cache, lease=here)
    fact = await db[LIVE.facts].find_one({"_id": fact_id(TENANT, "r1")})
    assert fact is not None and fact["version"] == 3 and len(fact["events"]) == len(events)
    assert folded.facts == [fact] and "completed_at" in fact["offers"]["speech-therapy"]
    # The cache holds what was written last, so the next batch starts from it without reading.
    assert cache.get_many(LIVE.facts, [fact["_id"]]) == {fact["_id"]: fact}
    again = await fold_batch(client, db, target=LIVE, envelopes=events, cache=cache, lease=here)
    assert again.changed == 0 and again.facts == []  # every event was folded before


async def test_the_index_follows_facts_written_elsewhere_and_ignores_older_copies(
    mongo: tuple[AsyncMongoClient[Document], Database],
) -> None:
    client, db = mongo
    elsewhere = WriterLease(db)
    await fold_batch(client, db, target=LIVE, envelopes=lifecycle("before", "accepted"), lease=elsewhere)
    follower = FactsFollower(db)
    running = asyncio.create_task(follower.run())
    try:
        index = await follower.index(LIVE, wait_s=30)  # loaded with what was there already

        def submitted() -> int:
            return index.totals(tenant=TENANT, periods=[MARCH])[0].get("submitted", 0)

        async def two_submitted() -> bool:
            return submitted() == 2

        assert submitted() == 1
        # Written by another process: the change stream brings it.
        await fold_batch(
            client, db, target=LIVE, envelopes=lifecycle("elsewhere", "completed"), lease=elsewhere
        )
        await eventually(two_submitted, what="the other process's fact counted")
        # Written here and handed over at once; the change stream's copy of it changes nothing.
        folded = await fold_batch(
            client, db, target=LIVE, envelopes=lifecycle("here", "escalated"), lease=follower.lease
        )
        follower.apply(LIVE, folded.facts)
        assert submitted() == 3
        stale = {**folded.facts[0], "version": 0, "escalated": None}
        follower.apply(LIVE, [stale])
        assert index.totals(tenant=TENANT, periods=[MARCH])[0]["escalated"] == 1
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)


async def test_a_set_still_loading_says_so(mongo: tuple[AsyncMongoClient[Document], Database]) -> None:
    _, db = mongo
    follower = FactsFollower(db)
    with pytest.raises(IndexLoading, match="loading"):
        await follower.index(LIVE, wait_s=0)  # not given a moment to read anything


async def test_replicas_read_each_others_writes_and_a_lone_writer_leaves_the_change_stream_alone(
    mongo: tuple[AsyncMongoClient[Document], Database],
) -> None:
    client, db = mongo
    # Short leases, so they lapse within the test: each follower then pauses its change stream.
    first, second = (FactsFollower(db, lease=WriterLease(db, lease_s=3, margin_s=2)) for _ in range(2))
    running = [asyncio.create_task(first.run())]
    try:
        first_index = await first.index(LIVE, wait_s=30)
        folded = await fold_batch(
            client, db, target=LIVE, envelopes=lifecycle("one", "accepted"), lease=first.lease
        )
        first.apply(LIVE, folded.facts)
        assert not first.reading_changes  # the only writer: nothing to read

        running.append(asyncio.create_task(second.run()))
        second_index = await second.index(LIVE, wait_s=30)

        def counted(index: FactIndex) -> int:
            return index.totals(tenant=TENANT, periods=[MARCH])[0].get("submitted", 0)

        async def both_read(expected: int) -> bool:
            return counted(first_index) == counted(second_index) == expected

        await eventually(lambda: both_read(1), what="the second replica loading the first one's fact")
        # Each replica's writes reach the other's index (and its own, handed over by the fold).
        folded = await fold_batch(
            client, db, target=LIVE, envelopes=lifecycle("two", "completed"), lease=second.lease
        )
        second.apply(LIVE, folded.facts)
        await eventually(lambda: both_read(2), what="the first replica reading the second one's fact")
        folded = await fold_batch(
            client, db, target=LIVE, envelopes=lifecycle("three", "escalated"), lease=first.lease
        )
        first.apply(LIVE, folded.facts)
        await eventually(lambda: both_read(3), what="the second replica reading the first one's fact")

        async def both_paused() -> bool:
            return not first.reading_changes and not second.reading_changes

        await eventually(both_paused, what="both leases lapsing, so neither reads the change stream")
        # Paused, not skipped: a write after the pause is read once its writer renews its lease.
        folded = await fold_batch(
            client, db, target=LIVE, envelopes=lifecycle("four", "accepted"), lease=second.lease
        )
        second.apply(LIVE, folded.facts)
        await eventually(lambda: both_read(4), what="the paused stream resuming where it stopped")
    finally:
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
