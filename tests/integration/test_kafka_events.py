"""The event contract on a real broker: CloudEvents binary mode through Kafka headers.

What happens to messages that are not events: test_consumer_failures.py."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import ConsumerRecord
from signpost.shared.events import from_kafka, new_event
from signpost.shared.kafka import IdempotenceRefused, create_broker, ensure_topics, start_broker
from signpost.shared.settings import Settings
from signpost.shared.topics import Topics

from tests.conftest import settings_for
from tests.publishing import publish_event
from tests.servers import MongoServer, RestartableKafka
from tests.unit.shared.test_events import submitted


@asynccontextmanager
async def reading(topic: str, settings: Settings) -> AsyncIterator[AIOKafkaConsumer]:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=settings.kafka_bootstrap, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        yield consumer
    finally:
        await consumer.stop()


async def next_record(consumer: AIOKafkaConsumer) -> ConsumerRecord[bytes, bytes]:
    return await asyncio.wait_for(consumer.getone(), timeout=30)


async def test_envelope_round_trips_through_kafka_headers(settings: Settings) -> None:
    await ensure_topics(settings)
    topic = Topics.from_settings(settings).referrals
    broker = create_broker(settings, service="test")
    event = new_event(submitted("r-42"), source="/tests", tenant="E06000023", correlation_id="c-9")
    async with broker:
        await broker.start()
        await publish_event(broker, topic=topic, envelope=event)
    async with reading(topic, settings) as consumer:
        record = await next_record(consumer)
    headers = {key: value.decode() for key, value in record.headers}
    # Any CloudEvents SDK reads these: attributes as ce_* headers, data as the JSON body.
    assert record.key == b"r-42"
    assert headers["ce_id"] == event.id and headers["ce_type"] == event.type
    assert headers["ce_tenant"] == "E06000023" and headers["ce_correlationid"] == "c-9"
    assert headers["correlation_id"] == "c-9"  # FastStream's own header agrees with it
    assert headers["content-type"] == "application/json"
    assert from_kafka(record.value, headers) == event


async def test_a_broker_refusing_idempotent_producers_is_told_apart_with_what_to_set(
    restartable_kafka: RestartableKafka, mongodb: MongoServer
) -> None:
    """Tansu refuses idempotent producers and aiokafka says only UnknownError: a service started
    against it by hand, without SIGNPOST_KAFKA_IDEMPOTENCE=false, says what to set."""
    settings = settings_for(restartable_kafka.as_server(), mongodb).model_copy(
        update={"kafka_idempotence": True}
    )
    broker = create_broker(settings, service="intake")
    try:
        with pytest.raises(IdempotenceRefused, match="set SIGNPOST_KAFKA_IDEMPOTENCE=false"):
            await start_broker(broker, settings)
    finally:
        await broker.stop()
    allowed = settings.model_copy(update={"kafka_idempotence": False})
    broker = create_broker(allowed, service="intake")
    try:
        await start_broker(broker, allowed)
    finally:
        await broker.stop()
