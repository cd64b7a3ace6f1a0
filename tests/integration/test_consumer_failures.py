"""How a consumer treats failures, on the real broker and database.

A handler failing on a valid event -> retry topic, retried with backoff, then dead-lettered,
never blocking its partition; MongoDB unreachable -> retried in place, in order, nothing lost;
a message that is not an event -> dead-lettered at once with a reason of its own.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

from aiokafka import AIOKafkaProducer
from faststream.kafka import KafkaBroker
from pymongo import AsyncMongoClient
from signpost.shared.events import (
    Envelope,
    EventData,
    ProvisionChangedV1,
    new_event,
    to_kafka_headers,
    to_kafka_value,
)
from signpost.shared.kafka import create_broker, ensure_topics, subscribe_events
from signpost.shared.mongo import Document, Session, in_transaction, mark_processed
from signpost.shared.retries import is_infrastructure_failure
from signpost.shared.settings import ServiceName
from signpost.shared.topics import Topics

from tests.conftest import eventually, fail_fast_client, settings_for
from tests.integration.records import headers_of, records_on, wait_for_records
from tests.publishing import publish_event
from tests.servers import KafkaServer, MongoServer
from tests.unit.shared.test_events import submitted

SERVICE: ServiceName = "routing"


def event_for(referral_id: str) -> Envelope[EventData]:
    return new_event(submitted(referral_id), source="/tests", tenant="E06000023")


def provision_event(provision_id: str) -> Envelope[EventData]:
    change = ProvisionChangedV1(
        provision_id=provision_id,
        change="created",
        provision={"name": "Speech and language drop-in"},
        changed_at=datetime.now(UTC),
    )
    return new_event(change, source="/tests", tenant="E06000023")


def checking(condition: Callable[[], object]) -> Callable[[], Awaitable[object]]:
    async def probe() -> object:
        return condition()

    return probe


@asynccontextmanager
async def consuming(broker: KafkaBroker) -> AsyncIterator[KafkaBroker]:
    async with broker:
        await broker.start()
        yield broker


async def test_messages_that_are_not_events_are_dead_lettered_each_with_its_own_reason(
    kafka: KafkaServer, mongodb: MongoServer
) -> None:
    settings = settings_for(kafka, mongodb, event_max_bytes=1024)
    await ensure_topics(settings)
    topics = Topics.from_settings(settings)
    event, provision = event_for("r-7"), provision_event("p-1")
    headers, body = to_kafka_headers(event), to_kafka_value(event)

    def without(name: str) -> dict[str, str]:
        return {k: v for k, v in headers.items() if k != name}

    padded = json.dumps({**json.loads(body), "padding": "x" * 2000}).encode()
    referrals, provisions = topics.referrals, topics.provisions
    # (topic, headers, body, expected reason); per topic one key, so each bad message
    # sits ahead of that topic's good event on one partition, at offsets 0, 1, 2…
    bad: list[tuple[str, dict[str, str], bytes | None, str]] = [
        (referrals, headers, b'{"referral_id": "r-7",', "body: malformed JSON"),
        (referrals, headers, body.replace(b'"age_years":8', b'"age_years":"eight"'), "body: age_years: "),
        (referrals, headers, padded, "over the 1024-byte limit"),
        (referrals, headers, None, "body: empty"),
        (
            referrals,
            {**headers, "ce_type": "uk.signpost.referral.submitted.v2"},
            body,
            "unsupported version 'v2'",
        ),
        (referrals, {**headers, "ce_type": "uk.signpost.referral.teleported.v1"}, body, "unknown event type"),
        (referrals, {**headers, "ce_specversion": "0.3"}, body, "header ce_specversion: '0.3'"),
        (referrals, without("ce_type"), body, "header ce_type is missing"),
        (referrals, without("ce_id"), body, "header ce_id missing"),
        (referrals, {**headers, "ce_time": "last tuesday"}, body, "header ce_time: "),
        (
            provisions,
            to_kafka_headers(provision),
            to_kafka_value(provision).replace(b'"created"', b'"exploded"'),
            "body: change: ",
        ),
    ]
    handled: list[str] = []

    async def handler(envelope: Envelope[EventData]) -> None:
        handled.append(envelope.id)

    broker = create_broker(settings, service=SERVICE)
    subscribe_events(
        broker, settings=settings, service=SERVICE, handler=handler, topics=[referrals, provisions]
    )
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
    await producer.start()
    try:
        for topic, bad_headers, value, _ in bad:
            await producer.send_and_wait(
                topic,
                value,
                key=b"r-7" if topic == referrals else b"p-1",
                headers=[(name, text.encode()) for name, text in bad_headers.items()],
            )
        async with consuming(broker):
            await publish_event(broker, topic=referrals, envelope=event)
            await publish_event(broker, topic=provisions, envelope=provision)
            await eventually(checking(lambda: len(handled) >= 2), what="both good events handled")
    finally:
        await producer.stop()

    assert sorted(handled) == sorted([event.id, provision.id])
    letters = {
        (headers_of(letter)["dlq_topic"], int(headers_of(letter)["dlq_offset"])): letter
        for letter in await wait_for_records(settings, topics.dead_letters, len(bad))
    }
    offsets = {referrals: 0, provisions: 0}
    reasons = []
    for topic, bad_headers, value, expected in bad:
        letter = letters[(topic, offsets[topic])]
        offsets[topic] += 1
        dlq = headers_of(letter)
        reasons.append(dlq["dlq_error"])
        assert expected in dlq["dlq_error"], (expected, dlq["dlq_error"])
        assert letter.value == (value or b"") and letter.key in {b"r-7", b"p-1"}
        assert bad_headers.items() <= dlq.items()  # the original headers, untouched
        assert dlq["dlq_kind"] == "not-an-event" and dlq["dlq_attempts"] == "0"
        assert dlq["dlq_service"] == SERVICE
    assert len(set(reasons)) == len(bad)
    assert await records_on(settings, topics.retry(SERVICE)) == []


async def test_a_poison_event_is_retried_then_dead_lettered_and_never_blocks_its_partition(
    kafka: KafkaServer, mongodb: MongoServer
) -> None:
    settings = settings_for(kafka, mongodb, retry_delays_s=(0.5, 1.5))
    await ensure_topics(settings)
    topics = Topics.from_settings(settings)
    poison, later = event_for("r-1"), event_for("r-1")  # same referral: same partition
    calls: list[str] = []
    later_handled = asyncio.Event()

    async def handler(envelope: Envelope[EventData]) -> None:
        if envelope.id != poison.id:
            calls.append(envelope.id)
            later_handled.set()
            return
        if poison.id in calls:
            # Were the partition blocked behind the poison event, `later` would never be
            # handled and this retry would time out instead of seeing it.
            await asyncio.wait_for(later_handled.wait(), timeout=30)
        calls.append(envelope.id)
        raise RuntimeError("no provision p-77 in the catalogue")

    broker = create_broker(settings, service=SERVICE)
    subscribe_events(broker, settings=settings, service=SERVICE, handler=handler)
    async with consuming(broker):
        await publish_event(broker, topic=topics.referrals, envelope=poison)
        await publish_event(broker, topic=topics.referrals, envelope=later)
        (letter,) = await wait_for_records(settings, topics.dead_letters, 1)

    assert calls == [poison.id, later.id, poison.id, poison.id]
    (original,) = [r for r in await records_on(settings, topics.referrals) if r.offset == 0]
    dlq = headers_of(letter)
    assert letter.value == to_kafka_value(poison) and letter.key == b"r-1"
    assert to_kafka_headers(poison).items() <= dlq.items()
    assert not [name for name in dlq if name.startswith("retry_")]
    assert dlq["dlq_kind"] == "handler-failed" and dlq["dlq_attempts"] == "3"
    assert dlq["dlq_error"] == "RuntimeError: no provision p-77 in the catalogue"
    assert dlq["dlq_service"] == SERVICE and dlq["dlq_first_failed_at"]
    assert (dlq["dlq_topic"], dlq["dlq_partition"], dlq["dlq_offset"]) == (
        topics.referrals,
        str(original.partition),
        "0",
    )
    parked = [headers_of(record) for record in await records_on(settings, topics.retry(SERVICE))]
    assert [p["retry_attempts"] for p in parked] == ["1", "2"]
    assert all(p["ce_id"] == poison.id and p["retry_error"].startswith("RuntimeError") for p in parked)
    assert parked[0]["retry_first_failed_at"] == parked[1]["retry_first_failed_at"]


async def test_a_handler_that_fails_twice_then_succeeds_applies_its_effect_once(
    kafka: KafkaServer, mongodb: MongoServer
) -> None:
    settings = settings_for(kafka, mongodb, retry_delays_s=(0.2, 0.2, 0.2))
    await ensure_topics(settings)
    topics = Topics.from_settings(settings)
    client: AsyncMongoClient[Document] = AsyncMongoClient(settings.mongodb_url, tz_aware=True)
    db = client[settings.database_name(SERVICE)]
    event = event_for("r-2")
    calls = 0

    async def handler(envelope: Envelope[EventData]) -> None:
        nonlocal calls
        calls += 1
        if calls <= 2:
            raise RuntimeError(f"flaky, call {calls}")

        async def apply(session: Session) -> None:
            if await mark_processed(db, event_id=envelope.id, session=session):
                await db["effects"].insert_one({"event_id": envelope.id}, session=session)

        await in_transaction(client, apply)

    broker = create_broker(settings, service=SERVICE)
    subscribe_events(broker, settings=settings, service=SERVICE, handler=handler)
    try:
        async with consuming(broker):
            # Delivered twice, as at-least-once allows: both copies fail, both are retried.
            await publish_event(broker, topic=topics.referrals, envelope=event)
            await publish_event(broker, topic=topics.referrals, envelope=event)
            await eventually(checking(lambda: calls >= 4), what="both copies retried")
        assert await db["effects"].count_documents({"event_id": event.id}) == 1
        assert await records_on(settings, topics.dead_letters) == []
        # Two failures, two retry records (attempt 1 of each copy, or attempts 1 and 2 of one).
        assert len(await records_on(settings, topics.retry(SERVICE))) == 2
    finally:
        await client.drop_database(db.name)
        await client.close()


async def test_while_mongodb_is_unreachable_events_wait_in_place_in_order_and_nothing_is_lost(
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
    events = [event_for("r-3") for _ in range(5)]
    failures: list[Exception] = []

    async def handler(envelope: Envelope[EventData]) -> None:
        # An explicit transaction: the driver's with_transaction would retry on its own.
        try:
            async with client.start_session() as session, await session.start_transaction():
                if await mark_processed(db, event_id=envelope.id, session=session):
                    await db["effects"].update_one(
                        {"_id": "log"}, {"$push": {"handled": envelope.id}}, session=session
                    )
        except Exception as exc:
            failures.append(exc)
            raise

    async def handled() -> list[str]:
        log = await db["effects"].find_one({"_id": "log"})
        return list(log["handled"]) if log else []

    async def handled_at_least(count: int) -> bool:
        return len(await handled()) >= count

    broker = create_broker(settings, service=SERVICE)
    subscribe_events(broker, settings=settings, service=SERVICE, handler=handler)
    try:
        async with consuming(broker):
            await publish_event(broker, topic=topics.referrals, envelope=events[0])
            await eventually(lambda: handled_at_least(1), what="the first event handled")
            control.pause()
            try:
                for event in events[1:]:
                    await publish_event(broker, topic=topics.referrals, envelope=event)
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
