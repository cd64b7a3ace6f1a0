"""Samples the streams at a fixed interval: watermarks, group lag, last event times, dead letters.

Events per second come from the high-watermark deltas between samples, so the rate
is what the brokers really took in, whoever produced it. Each analytics process
samples on its own and keeps a short history in memory (it is a live view; the
projections are the durable record).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition
from signpost.analytics.ops.retained import RetainedCounts
from signpost.shared.errors import describe_error
from signpost.shared.events import header_texts
from signpost.shared.logging import get_logger
from signpost.shared.offsets import PartitionLag, StreamInspector, Watermarks, all_watermarks, lag_pairs
from signpost.shared.settings import SERVICE_NAMES, Settings
from signpost.shared.topics import Topics

log = get_logger(__name__)

HISTORY_S = 15 * 60  # what the ops page charts
RATE_WINDOW_S = 30.0  # the "now" rate averages over this much history, so one quiet sample is not zero
DEAD_LETTER_READ_BUDGET_S = 2.0


@dataclass(frozen=True)
class Sample:
    at: datetime
    monotonic: float
    high: dict[str, int]  # topic -> sum of its partitions' high watermarks
    lag: dict[str, int]  # group -> total lag over its partitions


@dataclass
class StreamState:
    """The latest reading, plus the history the rates and charts are drawn from."""

    watermarks: dict[TopicPartition, Watermarks] = field(default_factory=dict)
    lag: list[PartitionLag] = field(default_factory=list)
    dead_letters_by_service: Counter[str] = field(default_factory=Counter)
    history: deque[Sample] = field(default_factory=deque)
    sampled_at: datetime | None = None
    error: str | None = None  # why the last sample failed, if it did

    def add(self, sample: Sample) -> None:
        self.history.append(sample)
        while self.history and sample.monotonic - self.history[0].monotonic > HISTORY_S:
            self.history.popleft()

    def events_per_second(self, topic: str) -> float | None:
        """The topic's intake rate over the last RATE_WINDOW_S; None until two samples exist."""
        if len(self.history) < 2:
            return None
        latest = self.history[-1]
        base = next(
            (s for s in self.history if latest.monotonic - s.monotonic <= RATE_WINDOW_S),
            self.history[-2],
        )
        if base is latest:
            base = self.history[-2]
        elapsed = latest.monotonic - base.monotonic
        return max(0, latest.high.get(topic, 0) - base.high.get(topic, 0)) / elapsed if elapsed else None


class OpsSampler:
    """Background job: one sample every `ops_sample_interval_s`, errors logged and retried."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.topics = Topics.from_settings(settings)
        self.state = StreamState()
        self._inspector: StreamInspector | None = None
        self._dead_letters: DeadLetterTally | None = None

    async def run(self) -> None:
        try:
            while True:
                started = time.monotonic()
                await self.sample_once()
                await asyncio.sleep(
                    max(0.0, self.settings.ops_sample_interval_s - (time.monotonic() - started))
                )
        finally:
            await self._close()

    async def sample_once(self) -> None:
        try:
            await self._sample()
            self.state.error = None
        except Exception as exc:
            self.state.error = f"Kafka did not answer: {type(exc).__name__}"
            log.warning("ops sample failed; retrying at the next interval", error=describe_error(exc))
            await self._close()  # reconnect from scratch next time

    async def _sample(self) -> None:
        if self._inspector is None:
            inspector = StreamInspector(self.settings)
            await inspector.start()
            self._inspector = inspector
        inspector = self._inspector
        watermarks = await all_watermarks(inspector)
        lag = await inspector.lag(
            await inspector.groups(),
            watermarks=watermarks,
            always=[pair for service in SERVICE_NAMES for pair in lag_pairs(self.topics, service)],
        )
        await self._tally_dead_letters(watermarks)

        now = datetime.now(UTC)
        totals: Counter[str] = Counter()
        for tp, marks in watermarks.items():
            totals[tp.topic] += marks.high
        group_lag: Counter[str] = Counter()
        for row in lag:
            group_lag[row.group] += row.lag
        self.state.watermarks, self.state.lag, self.state.sampled_at = watermarks, lag, now
        self.state.add(Sample(now, time.monotonic(), dict(totals), dict(group_lag)))

    async def _tally_dead_letters(self, watermarks: dict[TopicPartition, Watermarks]) -> None:
        partitions = {tp: marks for tp, marks in watermarks.items() if tp.topic == self.topics.dead_letters}
        if self._dead_letters is None:
            self._dead_letters = DeadLetterTally(self.settings, list(partitions))
            await self._dead_letters.start()
        self.state.dead_letters_by_service = await self._dead_letters.read_up_to(partitions)

    async def _close(self) -> None:
        inspector, tally = self._inspector, self._dead_letters
        self._inspector = self._dead_letters = None
        if inspector is not None:
            await inspector.close()
        if tally is not None:
            await tally.stop()


class DeadLetterTally:
    """Counts the dead letters the topic retains by the service that refused them (their
    `dlq_service` header): read from the log start, forgotten as retention deletes them."""

    def __init__(self, settings: Settings, partitions: list[TopicPartition]) -> None:
        bootstrap, _ = settings.require_servers()
        self._partitions = partitions
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
        )
        self._retained = RetainedCounts()

    async def start(self) -> None:
        await self._consumer.start()
        if self._partitions:
            self._consumer.assign(self._partitions)
            await self._consumer.seek_to_beginning(*self._partitions)

    async def stop(self) -> None:
        await self._consumer.stop()

    async def read_up_to(self, watermarks: dict[TopicPartition, Watermarks]) -> Counter[str]:
        deadline = time.monotonic() + DEAD_LETTER_READ_BUDGET_S
        while time.monotonic() < deadline and await self._behind(watermarks):
            for records in (await self._consumer.getmany(timeout_ms=200)).values():
                for record in records:
                    headers = header_texts(record.headers)
                    partition = TopicPartition(record.topic, record.partition)
                    self._retained.add(partition, record.offset, headers.get("dlq_service", "unknown"))
        for partition, marks in watermarks.items():
            self._retained.retain_from(partition, marks.low)
        return self._retained.counts()

    async def _behind(self, watermarks: dict[TopicPartition, Watermarks]) -> bool:
        for tp, marks in watermarks.items():
            if await self._consumer.position(tp) < marks.high:
                return True
        return False
