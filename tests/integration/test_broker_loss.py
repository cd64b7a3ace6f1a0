"""How a service tells, at start-up, that the broker has lost its log: its consumer group's offsets
on the referrals topic are gone (the embedded broker keeps them in memory, with the log)."""

from __future__ import annotations

from aiokafka import AIOKafkaConsumer, TopicPartition
from signpost.shared.kafka import ensure_topics
from signpost.shared.offsets import group_has_no_offsets
from signpost.shared.settings import Settings
from signpost.shared.topics import Topics


async def test_a_group_that_committed_has_offsets_and_a_new_one_has_none(settings: Settings) -> None:
    await ensure_topics(settings)
    topics = Topics.from_settings(settings)
    group = topics.group("routing")
    assert await group_has_no_offsets(settings, group=group)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap, group_id=group, enable_auto_commit=False
    )
    last = TopicPartition(topics.referrals, topics.partitions - 1)
    await consumer.start()
    try:
        consumer.assign([last])
        await consumer.commit({last: 0})
    finally:
        await consumer.stop()
    assert not await group_has_no_offsets(settings, group=group)
    assert await group_has_no_offsets(settings, group=topics.group("intake"))
