"""The fold and the in-memory index on a real MongoDB: cached copies that went stale, and
an index that follows writes made by another process."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import date

import pytest
from pymongo import AsyncMongoClient
from signpost.analytics.projections.cache import WriteCache
from signpost.analytics.projections.facts import fact_id
from signpost.analytics.projections.fold import fold_batch
from signpost.analytics.projections.follower import FactsFollower, IndexLoading
from signpost.analytics.projections.index import Days
from signpost.analytics.projections.sets import INITIAL_SET, ProjectionSet
from signpost.shared.mongo import Database, Document
from signpost.shared.settings import Settings

from tests.analytics_events import TENANT, lifecycle
from tests.conftest import eventually

LIVE = ProjectionSet(INITIAL_SET)
MARCH: Days = (date(2026, 3, 1), date(2026, 3, 31))


@pytest.fixture
async def mongo(settings: Settings) -> AsyncIterator[tuple[AsyncMongoClient[Document], Database]]:
    client: AsyncMongoClient[Document] = AsyncMongoClient(settings.mongodb_url, tz_aware=True)
    try:
        yield client, client[settings.database_name("analytics")]
    finally:
        await client.close()


async def test_a_cached_copy_another_writer_changed_is_folded_again_from_mongodb(
    mongo: tuple[AsyncMongoClient[Document], Database],
) -> None:
    client, db = mongo
    events = lifecycle("r1", "completed", child_ref="c1")
    cache = WriteCache(size=100)
    await fold_batch(client, db, target=LIVE, envelopes=events[:2], cache=cache)
    # Another writer (a rebuild filling the same set, a replica after a rebalance) moves the fact on.
    await fold_batch(client, db, target=LIVE, envelopes=events[2:4])
    folded = await fold_batch(client, db, target=LIVE, envelopes=events[4:], cache=cache)
    fact = await db[LIVE.facts].find_one({"_id": fact_id(TENANT, "r1")})
    assert fact is not None and fact["version"] == 3 and len(fact["events"]) == len(events)
    assert folded.facts == [fact] and "completed_at" in fact["offers"]["speech-therapy"]
    # The cache holds what was written last, so the next batch starts from it without reading.
    assert cache.get_many(LIVE.facts, [fact["_id"]]) == {fact["_id"]: fact}
    again = await fold_batch(client, db, target=LIVE, envelopes=events, cache=cache)
    assert again.changed == 0 and again.facts == []  # every event was folded before


async def test_the_index_follows_facts_written_elsewhere_and_ignores_older_copies(
    mongo: tuple[AsyncMongoClient[Document], Database],
) -> None:
    client, db = mongo
    await fold_batch(client, db, target=LIVE, envelopes=lifecycle("before", "accepted"))
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
        await fold_batch(client, db, target=LIVE, envelopes=lifecycle("elsewhere", "completed"))
        await eventually(two_submitted, what="the other process's fact counted")
        # Written here and handed over at once; the change stream's copy of it changes nothing.
        folded = await fold_batch(client, db, target=LIVE, envelopes=lifecycle("here", "escalated"))
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
