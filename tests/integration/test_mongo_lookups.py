"""Lookups by id on the real database: a long list is asked for a chunk at a time (SecantusDB
tests each document against the whole `$in` list), and the answer is the same as one query's."""

from __future__ import annotations

import uuid

from pymongo import AsyncMongoClient
from signpost.shared.mongo import FIND_CHUNK, Document, find_by_ids

from tests.commands import SentCommands
from tests.servers import MongoServer


def lists(sent: SentCommands) -> list[list[str]]:
    """The `$in` list of every find sent."""
    return [list(find["filter"]["_id"]["$in"]) for find in sent.named("find")]


async def test_a_long_list_of_ids_is_looked_up_a_chunk_at_a_time_and_each_found_once(
    mongodb: MongoServer,
) -> None:
    finds = SentCommands()
    client: AsyncMongoClient[Document] = AsyncMongoClient(mongodb.url, event_listeners=[finds])
    try:
        collection = client[f"t{uuid.uuid4().hex[:10]}"]["things"]
        stored = [f"thing-{n:03d}" for n in range(FIND_CHUNK * 2 + 5)]
        await collection.insert_many([{"_id": key, "n": n} for n, key in enumerate(stored)])
        asked = [*stored, "missing-1", stored[0], "missing-2"]  # unknown ids and one twice

        found = await find_by_ids(collection, asked, projection={"n": 1})

        assert found == {key: {"_id": key, "n": n} for n, key in enumerate(stored)}
        assert [len(ids) for ids in lists(finds)] == [FIND_CHUNK, FIND_CHUNK, 7]
        assert sorted(key for ids in lists(finds) for key in ids) == sorted({*asked})
        assert await find_by_ids(collection, []) == {}
        assert len(lists(finds)) == 3  # nothing asked: no query
    finally:
        await client.close()
