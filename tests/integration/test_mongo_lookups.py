"""Lookups by id on the real database: a long list is asked for a chunk at a time (SecantusDB
tests each document against the whole `$in` list), and the answer is the same as one query's."""

from __future__ import annotations

import uuid

from pymongo import AsyncMongoClient, monitoring
from signpost.shared.mongo import FIND_CHUNK, Document, find_by_ids

from tests.servers import MongoServer


class FindCommands(monitoring.CommandListener):
    """The `$in` list of every find the client sends."""

    def __init__(self) -> None:
        self.lists: list[list[str]] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name == "find":
            self.lists.append(list(event.command["filter"]["_id"]["$in"]))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


async def test_a_long_list_of_ids_is_looked_up_a_chunk_at_a_time_and_each_found_once(
    mongodb: MongoServer,
) -> None:
    finds = FindCommands()
    client: AsyncMongoClient[Document] = AsyncMongoClient(mongodb.url, event_listeners=[finds])
    try:
        collection = client[f"t{uuid.uuid4().hex[:10]}"]["things"]
        stored = [f"thing-{n:03d}" for n in range(FIND_CHUNK * 2 + 5)]
        await collection.insert_many([{"_id": key, "n": n} for n, key in enumerate(stored)])
        asked = [*stored, "missing-1", stored[0], "missing-2"]  # unknown ids and one twice

        found = await find_by_ids(collection, asked, projection={"n": 1})

        assert found == {key: {"_id": key, "n": n} for n, key in enumerate(stored)}
        assert [len(ids) for ids in finds.lists] == [FIND_CHUNK, FIND_CHUNK, 7]
        assert sorted(key for ids in finds.lists for key in ids) == sorted({*asked})
        assert await find_by_ids(collection, []) == {}
        assert len(finds.lists) == 3  # nothing asked: no query
    finally:
        await client.close()
