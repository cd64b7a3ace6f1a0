"""The ops view's arithmetic over samples, and the dashboard pages' HTML."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
from aiokafka.structs import TopicPartition
from signpost.analytics.dashboard.pages import PAGES, render
from signpost.analytics.ops.sampler import DeadLetterTally, OpsSampler, Sample, StreamState
from signpost.analytics.ops.service import streams_view
from signpost.shared.offsets import Watermarks
from signpost.shared.settings import Settings


def sample(at_s: float, high: int) -> Sample:
    return Sample(datetime.fromtimestamp(at_s, UTC), at_s, {"referrals": high}, {})


def test_rate_is_the_watermark_delta_over_the_recent_window() -> None:
    state = StreamState()
    assert state.events_per_second("referrals") is None
    state.add(sample(0, 0))
    assert state.events_per_second("referrals") is None
    for second in range(1, 41):
        state.add(sample(second, second * 10))
    # Averaged over the last 30 s of samples: 10 per second.
    assert state.events_per_second("referrals") == 10
    state.add(sample(41, 400))  # a quiet second lowers the average a little, not to zero
    assert 9 < (state.events_per_second("referrals") or 0) < 10
    assert state.events_per_second("unknown") == 0


def test_history_keeps_fifteen_minutes() -> None:
    state = StreamState()
    for second in range(0, 1200, 5):
        state.add(sample(second, second))
    assert state.history[-1].monotonic - state.history[0].monotonic <= 15 * 60


def test_every_page_links_every_other_and_loads_only_local_assets() -> None:
    for page in PAGES:
        html = render(page)
        assert html.count('aria-current="page"') == 1
        for other in PAGES:
            assert f'href="/dashboard/{other.slug}"' in html
        assert "http://" not in html and "https://" not in html
        assert '<script src="/dashboard/assets/plotly.min.js"' in html


def test_before_a_sample_succeeds_the_dead_letters_are_unknown_not_zero() -> None:
    sampler = OpsSampler(Settings(_env_file=None))
    sampler.state.error = "Kafka did not answer: KafkaConnectionError"
    view = streams_view(sampler)
    assert view.sampled_at is None and view.error == sampler.state.error
    assert view.dead_letters.total is None


@dataclass
class DeadLetterLog:
    """What DeadLetterTally reads through: one partition's records, each a refusing service."""

    partition: TopicPartition
    services: list[str]
    read: int = 0

    async def getmany(self, timeout_ms: int) -> dict[TopicPartition, list[SimpleNamespace]]:
        records = [
            SimpleNamespace(
                topic=self.partition.topic,
                partition=self.partition.partition,
                offset=offset,
                headers=[("dlq_service", service.encode())],
            )
            for offset, service in enumerate(self.services)
            if offset >= self.read
        ]
        self.read = len(self.services)
        return {self.partition: records}

    async def position(self, partition: TopicPartition) -> int:
        return self.read


async def test_dead_letters_by_service_count_only_what_the_topic_still_retains(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    partition = TopicPartition("signpost.dead-letters", 0)
    settings = Settings(_env_file=None, kafka_bootstrap="127.0.0.1:1", mongodb_url="mongodb://127.0.0.1:1")
    tally = DeadLetterTally(settings, [partition])
    log = DeadLetterLog(partition, ["routing", "routing", "routing", "analytics", "analytics"])
    monkeypatch.setattr(tally, "_consumer", log)
    assert await tally.read_up_to({partition: Watermarks(low=0, high=5)}) == {"routing": 3, "analytics": 2}
    # Retention deleted the oldest records: the log starts at offset 2, so two of routing's are gone.
    assert await tally.read_up_to({partition: Watermarks(low=2, high=5)}) == {"routing": 1, "analytics": 2}
    log.services += ["intake"]
    assert await tally.read_up_to({partition: Watermarks(low=4, high=6)}) == {"analytics": 1, "intake": 1}


async def test_the_ops_view_shows_retry_groups_and_every_topic_analytics_reads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The ops sampler reports the same (group, topic) pairs as each service's /metrics
    (offsets.lag_pairs), committed on yet or not: it read each main group on the referrals topic alone."""
    from signpost.shared.offsets import StreamInspector, lag_pairs
    from signpost.shared.settings import SERVICE_NAMES

    settings = Settings(_env_file=None, kafka_bootstrap="127.0.0.1:1", mongodb_url="mongodb://127.0.0.1:1")
    sampler = OpsSampler(settings)
    topics = sampler.topics
    inspector = StreamInspector(settings)
    every = [TopicPartition(spec.name, p) for spec in topics.specs() for p in range(spec.partitions)]

    async def partitions(names: object) -> list[TopicPartition]:
        return every

    async def watermarks(parts: list[TopicPartition]) -> dict[TopicPartition, Watermarks]:
        return {tp: Watermarks(low=0, high=3) for tp in parts}

    async def committed(group: str, parts: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {}

    class NoGroupsListed:
        async def list_consumer_groups(self) -> list[tuple[str, str]]:
            return []  # the broker lists no group yet: none has joined

    async def no_dead_letters(marks: object) -> None:
        return None

    for name, stub in (("partitions", partitions), ("watermarks", watermarks), ("committed", committed)):
        monkeypatch.setattr(inspector, name, stub)
    monkeypatch.setattr(inspector, "_admin", NoGroupsListed())
    sampler._inspector = inspector
    monkeypatch.setattr(sampler, "_tally_dead_letters", no_dead_letters)
    await sampler.sample_once()
    assert sampler.state.error is None
    assert {(row.group, row.topic) for row in sampler.state.lag} == {
        pair for service in SERVICE_NAMES for pair in lag_pairs(topics, service)
    }
    assert sampler.state.history[-1].lag[topics.retry_group("routing")] == 3 * topics.partitions
