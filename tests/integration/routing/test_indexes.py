"""Routing's index plan on a real MongoDB: an index an earlier release made and nothing reads is
dropped at start-up, and the ones routing reads by stay."""

from __future__ import annotations

from pymongo import ASCENDING, AsyncMongoClient
from signpost.routing.app import INDEXES
from signpost.routing.decisions.service import DECISIONS
from signpost.shared.mongo import Document
from signpost.shared.settings import Settings


async def test_the_unread_decisions_by_time_index_is_dropped_and_continuity_kept(settings: Settings) -> None:
    client: AsyncMongoClient[Document] = AsyncMongoClient(settings.mongodb_url)
    db = client[settings.database_name("routing")]
    try:
        await db[DECISIONS].create_index([("tenant", ASCENDING), ("decided_at", ASCENDING)])  # as before
        await INDEXES.apply(db)
        await INDEXES.apply(db)  # again, with nothing left to drop
        names = {index["name"] async for index in await db[DECISIONS].list_indexes()}
        assert names == {"_id_", "child_ref_1"}
    finally:
        await client.close()
