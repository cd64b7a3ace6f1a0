"""Which (group, topic) pairs a service's lag covers, and `service_lag` reading them: the broker's
answers are stubbed, the inspector's own arithmetic is not."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import pytest
from aiokafka.structs import TopicPartition
from signpost.analytics.projections.consumer import source_topics
from signpost.shared.offsets import StreamInspector, Watermarks, lag_groups, lag_pairs, service_lag
from signpost.shared.settings import SERVICE_NAMES, Settings
from signpost.shared.topics import Topics

TOPICS = Topics(prefix="", partitions=2, tenant="E1")


def test_each_service_covers_its_main_group_on_what_it_reads_and_its_retry_group() -> None:
    for service in ("intake", "routing"):
        assert lag_pairs(TOPICS, service) == [
            (TOPICS.group(service), TOPICS.referrals),
            (TOPICS.retry_group(service), TOPICS.retry(service)),
        ]
    analytics = TOPICS.group("analytics")
    assert set(lag_pairs(TOPICS, "analytics")) == {(analytics, topic) for topic in source_topics(TOPICS)}
    for service in SERVICE_NAMES:
        assert {group for group, _ in lag_pairs(TOPICS, service)} <= set(lag_groups(TOPICS, service))


def stubbed_inspector(
    monkeypatch: pytest.MonkeyPatch, committed: dict[str, dict[TopicPartition, int]]
) -> StreamInspector:
    """An inspector whose broker has every topic of the deployment, each partition 10 records long."""
    settings = Settings(
        _env_file=None, kafka_bootstrap="127.0.0.1:1", tenant=TOPICS.tenant, topic_partitions=2
    )
    inspector = StreamInspector(settings)

    async def partitions(topics: Iterable[str]) -> list[TopicPartition]:
        specs = {spec.name: spec.partitions for spec in TOPICS.specs()}
        return [TopicPartition(topic, p) for topic in topics for p in range(specs[topic])]

    async def watermarks(parts: Sequence[TopicPartition]) -> dict[TopicPartition, Watermarks]:
        return {tp: Watermarks(low=0, high=10) for tp in parts}

    async def group_offsets(group: str, parts: Sequence[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: offset for tp, offset in committed.get(group, {}).items() if tp in parts}

    monkeypatch.setattr(inspector, "partitions", partitions)
    monkeypatch.setattr(inspector, "watermarks", watermarks)
    monkeypatch.setattr(inspector, "committed", group_offsets)
    return inspector


async def test_a_services_lag_includes_its_retry_groups_backlog(monkeypatch: pytest.MonkeyPatch) -> None:
    retry = TopicPartition(TOPICS.retry("routing"), 0)
    inspector = stubbed_inspector(
        monkeypatch,
        {
            TOPICS.group("routing"): {TopicPartition(TOPICS.referrals, p): 10 for p in range(2)},
            TOPICS.retry_group("routing"): {retry: 4},
        },
    )
    rows = await service_lag(inspector, "routing")
    by_pair = {(row.group, row.topic, row.partition): row.lag for row in rows}
    # The old service_lag read the main group alone: the 6 + 10 parked retries were invisible.
    assert by_pair == {
        (TOPICS.group("routing"), TOPICS.referrals, 0): 0,
        (TOPICS.group("routing"), TOPICS.referrals, 1): 0,
        (TOPICS.retry_group("routing"), retry.topic, 0): 6,
        (TOPICS.retry_group("routing"), retry.topic, 1): 10,
    }


async def test_analytics_lag_covers_the_catalogue_and_register_before_it_commits_there(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    inspector = stubbed_inspector(monkeypatch, {})
    rows = await service_lag(inspector, "analytics")
    assert {row.topic for row in rows} == set(source_topics(TOPICS))
    assert all(row.group == TOPICS.group("analytics") and row.lag == 10 for row in rows)
