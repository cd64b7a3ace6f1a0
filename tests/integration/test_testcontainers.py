"""The Docker path of the server fixtures: only where a Docker engine answers."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from pymongo import AsyncMongoClient
from signpost.shared.kafka import ensure_topics
from signpost.shared.settings import Settings

from tests.servers import docker_available, kafka_server, mongo_server

pytestmark = [
    pytest.mark.docker,
    pytest.mark.skipif(
        not docker_available(), reason="no Docker engine answers: testcontainers path not run"
    ),
]


async def test_containers_give_a_replica_set_with_transactions_and_a_kafka_broker(tmp_path: Path) -> None:
    # Dedicated: with SIGNPOST_*_URL set, the others would be those servers, not containers.
    with (
        kafka_server(tmp_path, dedicated=True) as kafka,
        mongo_server(tmp_path, dedicated=True) as mongodb,
    ):
        assert kafka.kind == mongodb.kind == "testcontainers" and kafka.idempotence
        await ensure_topics(
            Settings(_env_file=None, kafka_bootstrap=kafka.bootstrap, mongodb_url=mongodb.url)
        )
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongodb.url)
        items = client[f"t{uuid.uuid4().hex[:10]}"]["items"]
        try:
            async with client.start_session() as session, await session.start_transaction():
                await items.insert_one({"_id": 1}, session=session)
            assert await items.count_documents({}) == 1
        finally:
            await client.drop_database(items.database.name)
            await client.close()
