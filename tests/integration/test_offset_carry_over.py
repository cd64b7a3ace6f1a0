"""Carrying a consumer group's offsets over from its former name when replicas start together:
the copy must not overwrite what the new group committed after it was first found empty, nor
fail start-up when the broker refuses it."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import CommitFailedError
from signpost.shared.kafka import ensure_topics
from signpost.shared.offsets import StreamInspector, carry_over_offsets, commit_offsets, stream_inspector
from signpost.shared.settings import Settings
from signpost.shared.topics import Topics


def first_read_finds_nothing(monkeypatch: pytest.MonkeyPatch, group: str) -> None:
    """The first read of `group`'s offsets answers as it did before another replica's consumer
    committed: nothing (the race, made certain)."""
    read = StreamInspector.committed
    seen: list[str] = []

    async def committed(
        self: StreamInspector, name: str, partitions: Sequence[TopicPartition]
    ) -> dict[TopicPartition, int]:
        if name == group and name not in seen:
            seen.append(name)
            return {}
        return await read(self, name, partitions)

    monkeypatch.setattr(StreamInspector, "committed", committed)


async def test_offsets_the_group_committed_after_it_was_found_empty_are_kept(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    topics = Topics.from_settings(settings)
    group = topics.group("routing")
    first = TopicPartition(topics.referrals, 0)
    await ensure_topics(settings)
    await commit_offsets(settings, group=topics.former_groups("routing")[group], offsets={first: 7})
    await commit_offsets(settings, group=group, offsets={first: 9})  # the other replica's consumer
    first_read_finds_nothing(monkeypatch, group)

    copied = await carry_over_offsets(settings, "routing")

    assert group not in copied
    async with stream_inspector(settings) as inspector:
        assert await inspector.committed(group, [first]) == {first: 9}  # not set back to 7


async def test_a_copy_the_broker_refuses_leaves_start_up_going(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Apache Kafka refuses a commit of generation -1 once the group has members."""
    topics = Topics.from_settings(settings)
    group = topics.group("intake")
    first = TopicPartition(topics.referrals, 0)
    await ensure_topics(settings)
    await commit_offsets(settings, group=topics.former_groups("intake")[group], offsets={first: 4})

    async def refused(self: AIOKafkaConsumer, offsets: object = None) -> None:
        raise CommitFailedError("the group has already rebalanced")

    monkeypatch.setattr(AIOKafkaConsumer, "commit", refused)
    copied = await carry_over_offsets(settings, "intake")
    assert group not in copied
