"""A running analytics service on real Kafka and MongoDB, fed by a producer as the other services would."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from pymongo import AsyncMongoClient
from signpost.analytics.app import create_app
from signpost.shared.events import Envelope, EventData, to_kafka_headers, to_kafka_value
from signpost.shared.mongo import Database, Document
from signpost.shared.settings import Settings
from signpost.shared.topics import Topics

from tests.conftest import Tokens, eventually, serving

PERIOD = {"from": "2026-03-01", "to": "2026-03-31"}


class Analytics:
    def __init__(self, settings: Settings, client: httpx.AsyncClient, producer: AIOKafkaProducer) -> None:
        self.settings, self.client, self.producer = settings, client, producer
        self.tokens = Tokens(settings)
        self.topics = Topics.from_settings(settings)

    def auth(self, role: str, *, tenant: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens.token(role, 'la-insight', tenant=tenant)}"}

    async def publish(self, events: Sequence[Envelope[EventData]], *, topic: str | None = None) -> None:
        for envelope in events:
            await self.producer.send_and_wait(
                topic or self.topics.referrals,
                to_kafka_value(envelope),
                key=envelope.subject.encode(),
                headers=[(key, value.encode()) for key, value in to_kafka_headers(envelope).items()],
            )

    async def get(self, path: str, role: str = "admin", **params: Any) -> dict[str, Any]:
        response = await self.client.get(path, params={**PERIOD, **params}, headers=self.auth(role))
        assert response.status_code == 200, response.text
        return dict(response.json())

    async def summary(self, role: str = "admin", **params: Any) -> dict[str, dict[str, Any]]:
        """Measure name -> its current figure's value (None when suppressed)."""
        answer = await self.get("/v1/pulse/summary", role, **params)
        return {item["measure"]: item["current"] for item in answer["measures"]}

    async def until(self, expected: Mapping[str, float], **params: Any) -> dict[str, dict[str, Any]]:
        """The admin's summary once every measure in `expected` has that value."""

        async def probe() -> dict[str, dict[str, Any]] | None:
            found = await self.summary(**params)
            return found if all(found[name]["value"] == value for name, value in expected.items()) else None

        return await eventually(probe, what=f"counted {expected}")


@pytest.fixture
async def analytics(settings: Settings) -> AsyncIterator[Analytics]:
    async with serving(create_app(settings)) as client:
        producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
        await producer.start()
        try:
            yield Analytics(settings, client, producer)
        finally:
            await producer.stop()


@pytest.fixture
async def mongo(settings: Settings) -> AsyncIterator[tuple[AsyncMongoClient[Document], Database]]:
    """A client, and this test's own analytics database."""
    client: AsyncMongoClient[Document] = AsyncMongoClient(settings.mongodb_url, tz_aware=True)
    try:
        yield client, client[settings.database_name("analytics")]
    finally:
        await client.close()
