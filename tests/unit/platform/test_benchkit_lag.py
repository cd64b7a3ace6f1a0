"""The benchmark's lag arithmetic: samples taken only while the load runs, growth over them, and a
service's lag summed over its groups and topics. No broker: fake readings."""

from __future__ import annotations

import asyncio

from aiokafka import TopicPartition
from signpost.shared.offsets import PartitionLag, Watermarks

from signpost.platform.benchkit import (
    GroupLag,
    ReadCost,
    StreamState,
    lag_growth,
    light_watermarks,
    sample_while,
)


class GrowingLag:
    """Lag that grows by 10 at each reading while the load runs and reads 0 once it has ended, as
    a platform that falls behind and then drains would."""

    def __init__(self) -> None:
        self.load_running = True
        self.readings = 0

    async def read(self) -> dict[str, int]:
        self.readings += 1
        return {"routing": 10 * self.readings if self.load_running else 0, "analytics": 0}


async def test_lag_is_sampled_while_the_load_runs_and_not_after() -> None:
    lag = GrowingLag()

    async def load() -> str:
        for _ in range(5):
            await asyncio.sleep(0)
        lag.load_running = False  # the load has ended: the platform drains from here
        return "done"

    result, samples = await sample_while(load(), lag.read, every_s=0)
    readings = lag.readings
    await asyncio.sleep(0)
    assert result == "done"
    assert lag.readings == readings  # no sampling after the load
    assert len(samples) >= 3
    # The one taken as the load ended is the only post-load reading.
    assert [sample["routing"] for _, sample in samples[:-1]] == [10 * n for n in range(1, len(samples))]


def test_growth_is_seen_in_samples_taken_during_the_load() -> None:
    during = [(float(t), {"routing": 10 * t, "analytics": 0}) for t in range(1, 10)]
    assert lag_growth(during) == 60.0
    # What sampling on through the drain did: zeros at the end cancel the growth out.
    drained = [(float(t), {"routing": 0, "analytics": 0}) for t in range(10, 19)]
    drained_growth = lag_growth(during + drained)
    assert drained_growth is not None and drained_growth <= 0


def test_growth_needs_three_samples() -> None:
    # Too few samples is no measurement, not "no growth".
    assert lag_growth([(0.0, {"routing": 5}), (1.0, {"routing": 50})]) is None
    assert lag_growth([]) is None


class FlakyLag:
    """Lag readings of which the second raises, as a broker that times out once would."""

    def __init__(self) -> None:
        self.readings = 0

    async def read(self) -> dict[str, int]:
        self.readings += 1
        if self.readings == 2:
            raise TimeoutError("broker did not answer")
        return {"routing": self.readings}


async def test_a_failed_reading_is_counted_and_sampling_goes_on() -> None:
    lag = FlakyLag()

    async def load() -> None:
        for _ in range(100):  # bounded: the old sampler stopped reading at the first error
            if lag.readings >= 5:
                return
            await asyncio.sleep(0)

    errors: list[str] = []
    _, samples = await sample_while(load(), lag.read, every_s=0, errors=errors)
    assert errors == [repr(TimeoutError("broker did not answer"))]
    # The readings after the failed one were still taken (the old sampler stopped at the first error).
    assert [sample["routing"] for _, sample in samples][:3] == [1, 3, 4]


def test_a_partitions_position_is_what_its_lag_counts_from() -> None:
    def at(low: int, high: int, committed: int | None) -> PartitionLag:
        return PartitionLag("g", "t", 0, low, high, committed)

    assert at(0, 10, 4).position == 4 and at(0, 10, 4).lag == 6
    assert at(3, 10, None).position == 3  # never committed: from the earliest retained record
    assert at(5, 10, 2).position == 5  # retention deleted past its offset
    assert at(0, 10, 12).lag == 0


def test_a_services_lag_sums_its_groups_and_topics() -> None:
    def row(group: str, topic: str, partition: int, high: int, committed: int | None) -> PartitionLag:
        return PartitionLag(group, topic, partition, 0, high, committed)

    referrals, provisions, retry = "signpost.referrals", "signpost.provisions", "signpost.retry.analytics"
    state = StreamState(
        ends={
            TopicPartition(referrals, 0): 100,
            TopicPartition(provisions, 0): 7,
            TopicPartition(retry, 0): 2,
        },
        rows=[
            row("signpost-analytics", referrals, 0, 100, 90),
            row("signpost-analytics", provisions, 0, 7, 4),
            row("signpost-analytics-retry", retry, 0, 2, None),
            row("signpost-routing", referrals, 0, 100, 100),
        ],
        services={
            "signpost-analytics": "analytics",
            "signpost-analytics-retry": "analytics",
            "signpost-routing": "routing",
        },
    )
    assert state.lag() == {"intake": 0, "routing": 0, "analytics": 10 + 3 + 2}
    assert state.consumed() == {"intake": 0, "routing": 100, "analytics": 90 + 4 + 0}
    assert state.produced == 109


def test_a_light_reading_keeps_the_last_full_readings_lows_and_real_ends() -> None:
    seen, new = TopicPartition("signpost.referrals", 0), TopicPartition("signpost.referrals", 1)
    last_full = {seen: Watermarks(low=4, high=20)}
    # Tansu reports 18 for a partition whose full reading found its real end at 20: not taken below it.
    assert light_watermarks({seen: 18, new: 7}, last_full) == {
        seen: Watermarks(low=4, high=20),
        new: Watermarks(low=0, high=7),
    }
    assert light_watermarks({seen: 25}, last_full) == {seen: Watermarks(low=4, high=25)}


class ReadingsCounted(GroupLag):
    """GroupLag with its two readings stubbed: the light one as given, the full one all caught up."""

    def __init__(self, light: dict[str, int]) -> None:
        self.light, self.full_reads, self.light_reads = light, 0, 0

    async def light_lag(self) -> dict[str, int]:
        self.light_reads += 1
        return self.light

    async def lag(self) -> dict[str, int]:
        self.full_reads += 1
        return {"routing": 0}


async def test_catching_up_is_polled_light_and_confirmed_in_full() -> None:
    behind = ReadingsCounted({"routing": 3})
    assert not await behind.none_behind()
    assert (behind.light_reads, behind.full_reads) == (1, 0)  # still draining: no record fetched
    level = ReadingsCounted({"routing": 0})
    assert await level.none_behind()
    assert (level.light_reads, level.full_reads) == (1, 1)  # the real ends have the last word


def test_read_costs_add_up() -> None:
    cost = ReadCost()
    cost.add(0.25)
    cost.add(0.75)
    assert (cost.count, cost.seconds) == (2, 1.0)
