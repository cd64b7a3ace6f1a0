"""The load generator's own arithmetic: which requests its latency percentiles cover, and that each
request is timed from its scheduled slot. No network and no real timing: a fake client and clock."""

from __future__ import annotations

import asyncio
import itertools
import json

import pytest

from signpost.platform.loadgen import NO_ANSWER, Attempt, LoadResult, ReferralLoad, percentile


def attempt(latency_s: float, status: int = 201, *, timed_out: bool = False) -> Attempt:
    return Attempt(sent_at=0.0, latency_s=latency_s, status=status, referral_id=None, timed_out=timed_out)


def test_a_timed_out_request_counts_in_the_latency_percentiles_at_the_time_it_gave_up() -> None:
    result = LoadResult(rate=10, duration_s=1)
    result.attempts = [attempt(0.010)] * 98 + [attempt(10.0, NO_ANSWER, timed_out=True), attempt(0.020)]
    assert result.latency_ms(99) == pytest.approx(20.0)
    assert result.latency_ms(100) == pytest.approx(10_000.0)
    assert result.timed_out == 1
    assert result.failed == 1


def test_quick_rejections_and_refused_connections_are_failures_not_latencies() -> None:
    result = LoadResult(rate=10, duration_s=1)
    result.attempts = [attempt(0.050), attempt(0.001, 503), attempt(0.002, NO_ANSWER)]
    assert result.latency_ms(50) == pytest.approx(50.0)
    assert result.failed == 2
    assert result.timed_out == 0
    assert result.failures() == {503: 1, NO_ANSWER: 1}


def test_slots_never_sent_count_as_not_accepted() -> None:
    result = LoadResult(rate=10, duration_s=1, not_sent=3)
    result.attempts = [attempt(0.01), attempt(0.01, 429)]
    assert result.scheduled == 5
    assert result.not_accepted == 4


def test_percentile_is_nearest_rank() -> None:
    assert percentile([5.0, 1.0, 3.0, 2.0, 4.0], 50) == 3.0
    assert percentile([1.0, 2.0], 99) == 2.0


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class StallingClient:
    """Answers at once, except that the first request stalls the generator for `stall_s` of the
    fake clock: as a blocked event loop would, which holds up every later slot too."""

    def __init__(self, clock: FakeClock, stall_s: float) -> None:
        self._clock, self._stall_s = clock, stall_s
        self.calls = 0

    async def post_json(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        self.calls += 1
        if self.calls == 1:
            self._clock.now += self._stall_s
        await asyncio.sleep(0)
        return 201, json.dumps({"id": f"r{self.calls}"}).encode()

    async def close(self) -> None:
        return None


async def test_each_request_is_timed_from_its_scheduled_slot_not_from_when_it_ran() -> None:
    clock = FakeClock()
    client = StallingClient(clock, stall_s=0.5)
    load = ReferralLoad(intake_url="http://unused", tokens=["t"], client=client, clock=clock)
    # Slots at 0, 0.01 and 0.02 s: the first request holds everything up until 0.5 s, so the
    # later two are sent 0.49 and 0.48 s after their slots, and their latency says so.
    result = await load.run(rate=100, duration_s=0.03)
    latencies = sorted(a.latency_s for a in result.attempts)
    assert latencies == pytest.approx([0.48, 0.49, 0.5])
    sent = sorted(a.sent_at for a in result.attempts)
    assert [b - a for a, b in itertools.pairwise(sent)] == pytest.approx([0.01, 0.01])
