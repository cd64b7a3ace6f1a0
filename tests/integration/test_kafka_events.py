"""The event contract on a real broker: CloudEvents binary mode through Kafka headers, dead letters."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import ConsumerRecord
from signpost.shared.events import Envelope, EventData, from_kafka, new_event
from signpost.shared.kafka import create_broker, ensure_topics, publish_event, subscribe_events
from signpost.shared.settings import Settings
from signpost.shared.topics import Topics

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
    event = new_event(
        submitted("r-42"), source="/tests", tenant="E06000023", subject="r-42", correlation_id="c-9"
    )
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
    assert headers["content-type"] == "application/json"
    assert from_kafka(record.value, headers) == event


async def test_messages_that_are_not_events_go_to_dead_letters_and_consumption_continues(
    settings: Settings,
) -> None:
    await ensure_topics(settings)
    topics = Topics.from_settings(settings)
    received: list[Envelope[EventData]] = []
    handled = asyncio.Event()

    async def handler(envelope: Envelope[EventData]) -> None:
        received.append(envelope)
        handled.set()

    broker = create_broker(settings, service="test")
    subscribe_events(broker, settings=settings, service="test", handler=handler)
    good = new_event(submitted("r-7"), source="/tests", tenant="t", subject="r-7")
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
    await producer.start()
    try:
        # Same key, so the poison message sits ahead of the good one on one partition.
        await producer.send_and_wait(
            topics.referrals,
            b"{not json",
            key=b"r-7",
            headers=[("ce_type", b"uk.signpost.referral.submitted.v1")],
        )
        await producer.send_and_wait(
            topics.referrals, b"{}", key=b"r-7", headers=[("ce_type", b"uk.signpost.nonsense.v9")]
        )
        async with broker:
            await broker.start()
            await publish_event(broker, topic=topics.referrals, envelope=good)
            await asyncio.wait_for(handled.wait(), timeout=60)
    finally:
        await producer.stop()
    assert [envelope.id for envelope in received] == [good.id]

    async with reading(topics.dead_letters, settings) as consumer:
        letters = [await next_record(consumer), await next_record(consumer)]
    first, second = ({k: v.decode() for k, v in letter.headers} for letter in letters)
    assert letters[0].value == b"{not json" and letters[0].key == b"r-7"
    assert first["dlq_error"].startswith("body: ") and first["dlq_topic"] == topics.referrals
    assert first["ce_type"] == "uk.signpost.referral.submitted.v1"  # original headers kept
    assert "unknown event type 'uk.signpost.nonsense.v9'" in second["dlq_error"]
