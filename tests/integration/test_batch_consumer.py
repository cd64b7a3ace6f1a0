"""The batch consumer on the real broker and database: a batch is one call (one transaction), a poison
event in it is isolated and dead-lettered while its neighbours are handled once, and while MongoDB
is away the batch waits in place, in order, losing nothing."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from aiokafka import AIOKafkaProducer
from pymongo import AsyncMongoClient
from signpost.shared.events import Envelope, EventData, to_kafka_headers, to_kafka_value
from signpost.shared.kafka import create_broker, ensure_topics, subscribe_events
from signpost.shared.mongo import Document, Session, in_transaction, mark_processed_many
from signpost.shared.retries import is_infrastructure_failure
from signpost.shared.settings import ServiceName, Settings
from signpost.shared.topics import Topics

from tests.conftest import eventually, fail_fast_client, settings_for
from tests.integration.records import headers_of, records_on, wait_for_records
from tests.integration.test_consumer_failures import checking, consuming, event_for
from tests.servers import KafkaServer, MongoServer

SERVICE: ServiceName = "routing"


async def publish_before_consuming(settings: Settings, events: Sequence[Envelope[EventData]]) -> None:
    """On the topic before the consumer starts, so its first fetch finds them all together."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
    await producer.start()
    try:
        for event in events:
            await producer.send_and_wait(
                Topics.from_settings(settings).referrals,
                to_kafka_value(event),
                key=event.subject.encode(),
                headers=[(name, text.encode()) for name, text in to_kafka_headers(event).items()],
            )
    finally:
        await producer.stop()


async def test_a_poison_event_in_a_batch_is_dead_lettered_and_the_others_are_handled_once(
    kafka: KafkaServer, mongodb: MongoServer
) -> None:
    settings = settings_for(kafka, mongodb, retry_delays_s=(0.2, 0.2))
    await ensure_topics(settings)
    topics = Topics.from_settings(settings)
    client: AsyncMongoClient[Document] = AsyncMongoClient(settings.mongodb_url, tz_aware=True)
    db = client[settings.database_name(SERVICE)]
    events = [event_for("r-9") for _ in range(5)]  # one referral: one partition, in order
    poison = events[2]
    batches: list[list[str]] = []

    async def apply(envelopes: Sequence[Envelope[EventData]]) -> None:
        async def write(session: Session) -> None:
            fresh = await mark_processed_many(db, event_ids=[e.id for e in envelopes], session=session)
            for envelope in envelopes:
                if envelope.id == poison.id:
                    raise RuntimeError("no provision p-77 in the catalogue")
                if envelope.id in fresh:
                    await db["effects"].insert_one({"event_id": envelope.id}, session=session)

        await in_transaction(client, write)

    async def batch_handler(envelopes: Sequence[Envelope[EventData]]) -> None:
        batches.append([e.id for e in envelopes])
        await apply(envelopes)

    async def handler(envelope: Envelope[EventData]) -> None:
        await apply([envelope])

    await publish_before_consuming(settings, events)
    broker = create_broker(settings, service=SERVICE)
    subscribe_events(broker, settings=settings, service=SERVICE, handler=handler, batch_handler=batch_handler)
    try:
        async with consuming(broker):
            (letter,) = await wait_for_records(settings, topics.dead_letters, 1)
            good = [e.id for e in events if e is not poison]

            async def all_good_applied() -> bool:
                return await db["effects"].count_documents({}) >= len(good)

            await eventually(all_good_applied, what="the good events applied")
        assert any(poison.id in batch and len(batch) > 1 for batch in batches), batches
        assert sorted([d["event_id"] async for d in db["effects"].find({})]) == sorted(good)  # each once
        dlq = headers_of(letter)
        assert letter.value == to_kafka_value(poison)
        assert dlq["dlq_kind"] == "handler-failed" and dlq["dlq_attempts"] == "3"
        assert dlq["dlq_error"] == "RuntimeError: no provision p-77 in the catalogue"
        parked = [headers_of(record) for record in await records_on(settings, topics.retry(SERVICE))]
        assert [p["ce_id"] for p in parked] == [poison.id, poison.id]
    finally:
        await client.drop_database(db.name)
        await client.close()


async def test_while_mongodb_is_away_a_batch_waits_in_place_and_nothing_is_lost(
    kafka: KafkaServer, pausable_mongodb: MongoServer, tmp_path: Path
) -> None:
    settings = settings_for(
        kafka, pausable_mongodb, consumer_backoff_initial_s=0.1, consumer_backoff_max_s=0.5
    )
    await ensure_topics(settings)
    topics = Topics.from_settings(settings)
    control = pausable_mongodb.control
    assert control is not None
    client = fail_fast_client(pausable_mongodb.url)
    db = client[settings.database_name(SERVICE)]
    await db["effects"].insert_one({"_id": "log", "handled": []})
    events = [event_for("r-4") for _ in range(8)]
    failures: list[Exception] = []

    async def batch_handler(envelopes: Sequence[Envelope[EventData]]) -> None:
        # An explicit transaction: the driver's with_transaction would retry on its own.
        try:
            async with client.start_session() as session, await session.start_transaction():
                fresh = await mark_processed_many(db, event_ids=[e.id for e in envelopes], session=session)
                handled = [e.id for e in envelopes if e.id in fresh]
                await db["effects"].update_one(
                    {"_id": "log"}, {"$push": {"handled": {"$each": handled}}}, session=session
                )
        except Exception as exc:
            failures.append(exc)
            raise

    async def handler(envelope: Envelope[EventData]) -> None:
        await batch_handler([envelope])

    async def handled() -> list[str]:
        log = await db["effects"].find_one({"_id": "log"})
        return list(log["handled"]) if log else []

    async def handled_at_least(count: int) -> bool:
        return len(await handled()) >= count

    broker = create_broker(settings, service=SERVICE)
    subscribe_events(broker, settings=settings, service=SERVICE, handler=handler, batch_handler=batch_handler)
    try:
        async with consuming(broker):
            await publish_before_consuming(settings, events[:1])
            await eventually(lambda: handled_at_least(1), what="the first event handled")
            control.pause()
            try:
                await publish_before_consuming(settings, events[1:])
                await eventually(checking(lambda: len(failures) >= 3), what="failures while paused")
            finally:
                control.resume()
            await eventually(lambda: handled_at_least(len(events)), what="every event handled")
        assert await handled() == [event.id for event in events]  # each once, in order
        assert all(is_infrastructure_failure(exc) for exc in failures), failures
        assert await records_on(settings, topics.retry(SERVICE)) == []
        assert await records_on(settings, topics.dead_letters) == []
    finally:
        await client.drop_database(db.name)
        await client.close()
