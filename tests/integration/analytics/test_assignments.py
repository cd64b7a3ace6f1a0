"""Offsets of a batch fetched before a rebalance are never committed, on the embedded broker: after the
broker lost its log they would be positions in the old one, and skip records of the new."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from signpost.analytics.projections.assignments import Assignments
from signpost.shared.settings import Settings

from tests.conftest import eventually

RECORDS = 10


async def test_a_batch_fetched_before_a_rebalance_does_not_commit_its_offsets(settings: Settings) -> None:
    read, other = f"{settings.topic_prefix}read", f"{settings.topic_prefix}other"
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(read, 1, 1), NewTopic(other, 1, 1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
    await producer.start()
    try:
        for n in range(RECORDS):
            await producer.send_and_wait(read, b"%d" % n)
    finally:
        await producer.stop()

    partition = TopicPartition(read, 0)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=f"{settings.topic_prefix}group",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=settings.kafka_session_timeout_ms,
        heartbeat_interval_ms=settings.kafka_heartbeat_interval_ms,
    )
    assignments = Assignments()
    consumer.subscribe([read], listener=assignments)
    await consumer.start()
    try:
        fetched = await _fetch_all(consumer, partition)
        fetched_under = assignments.current

        # A rebalance that hands this consumer the same partition again (as a rejoin after the
        # broker lost the group does): aiokafka would take an explicit commit of the old batch.
        consumer.subscribe([read, other], listener=assignments)
        await eventually(lambda: _assigned(consumer, TopicPartition(other, 0)), what="the rejoin")
        assert partition in consumer.assignment()
        assert assignments.current > fetched_under

        assert not await assignments.commit(consumer, {partition: fetched}, fetched_under=fetched_under)
        assert await consumer.committed(partition) is None

        # The current assignment reads the partition again from its committed offset and commits.
        again = await _fetch_all(consumer, partition)
        assert await assignments.commit(consumer, {partition: again}, fetched_under=assignments.current)
        assert await consumer.committed(partition) == RECORDS
    finally:
        await consumer.stop()


async def _fetch_all(consumer: AIOKafkaConsumer, partition: TopicPartition) -> int:
    """Read the partition to its end; the offset after its last record."""
    offsets: list[int] = []
    async with asyncio.timeout(30):
        while len(offsets) < RECORDS:
            batch = await consumer.getmany(timeout_ms=500)
            offsets += [record.offset for record in batch.get(partition, [])]
    assert offsets == list(range(RECORDS))
    return offsets[-1] + 1


async def _assigned(consumer: AIOKafkaConsumer, partition: TopicPartition) -> bool:
    # Polled for this (empty) partition only: the rejoin completes, the other's records stay unread.
    await consumer.getmany(partition, timeout_ms=100)
    return partition in consumer.assignment()
