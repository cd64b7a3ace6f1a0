"""Topics get the replication factor the settings name and their retention, whether a service or
`signpost migrate` creates them."""

from __future__ import annotations

from typing import Any

import pytest
from aiokafka.admin import NewTopic
from signpost.shared import kafka
from signpost.shared.kafka import ensure_topics
from signpost.shared.settings import Settings
from signpost.shared.topics import Topics


@pytest.fixture
def created(monkeypatch: pytest.MonkeyPatch) -> list[NewTopic]:
    """What ensure_topics asks a cluster with no topics yet to create."""
    requested: list[NewTopic] = []

    class RecordingAdmin:
        def __init__(self, **_: Any) -> None:
            pass

        async def start(self) -> None:
            pass

        async def list_topics(self) -> list[str]:
            return []

        async def create_topics(self, topics: list[NewTopic]) -> None:
            requested.extend(topics)

        async def close(self) -> None:
            pass

    monkeypatch.setattr(kafka, "AIOKafkaAdminClient", RecordingAdmin)
    return requested


async def test_every_topic_is_created_with_the_settings_replication_factor(created: list[NewTopic]) -> None:
    settings = Settings(
        _env_file=None, kafka_bootstrap="kafka:9092", mongodb_url="mongodb://m", topic_replication_factor=3
    )
    await ensure_topics(settings)
    assert {topic.name for topic in created} == {spec.name for spec in Topics.from_settings(settings).specs()}
    assert {topic.replication_factor for topic in created} == {3}


async def test_whoever_creates_the_topics_sets_their_retention(created: list[NewTopic]) -> None:
    settings = Settings(_env_file=None, kafka_bootstrap="kafka:9092", mongodb_url="mongodb://m")
    await ensure_topics(settings)  # as a service starting before `signpost migrate` does
    topics = Topics.from_settings(settings)
    retention = {topic.name: topic.topic_configs.get("retention.ms") for topic in created}
    assert retention[topics.referrals] == "-1"  # kept for good: analytics is rebuilt from it
    assert retention[topics.dead_letters] == str(30 * 24 * 3600 * 1000)
