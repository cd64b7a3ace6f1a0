"""Reading what is on a topic right now, for assertions on retry and dead-letter records, and
what a service's consumer group has committed."""

from __future__ import annotations

from typing import TypeAlias

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import ConsumerRecord, TopicPartition
from signpost.shared.settings import ServiceName, Settings
from signpost.shared.topics import Topics

from tests.conftest import eventually

Record: TypeAlias = ConsumerRecord[bytes, bytes]


async def records_on(settings: Settings, topic: str) -> list[Record]:
    """Every record on `topic` up to its current end, in (partition, offset) order."""
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        await consumer.topics()
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        if not partitions:
            return []
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        found: list[Record] = []
        while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
            for batch in (await consumer.getmany(timeout_ms=1000)).values():
                found.extend(batch)
        return sorted(found, key=lambda record: (record.partition, record.offset))
    finally:
        await consumer.stop()


async def wait_for_records(settings: Settings, topic: str, count: int) -> list[Record]:
    async def enough() -> list[Record] | None:
        found = await records_on(settings, topic)
        return found if len(found) >= count else None

    return await eventually(enough, timeout_s=60, what=f"{count} record(s) on {topic}")


def headers_of(record: Record) -> dict[str, str]:
    return {name: value.decode() for name, value in record.headers}


async def committed_offsets(settings: Settings, *, service: ServiceName) -> int:
    """The sum of `service`'s main group's committed offsets on the referrals topic."""
    topics = Topics.from_settings(settings)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap, group_id=topics.group(service), enable_auto_commit=False
    )
    await consumer.start()
    try:
        partitions = [TopicPartition(topics.referrals, p) for p in range(settings.topic_partitions)]
        return sum([(await consumer.committed(tp)) or 0 for tp in partitions])
    finally:
        await consumer.stop()
