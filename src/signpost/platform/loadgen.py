"""An open-loop HTTP load generator for intake: referrals go out on schedule, whether or not earlier
ones have been answered (a closed loop would slow down with the server and hide its queueing).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import httpx

from signpost.platform.samples import sample_referral

NO_ANSWER = 0


@dataclass(frozen=True)
class Attempt:
    sent_at: float  # wall clock (time.time()), to line up with server timestamps
    latency_s: float
    status: int  # NO_ANSWER when the connection failed or timed out
    referral_id: str | None


@dataclass
class LoadResult:
    rate: float
    duration_s: float
    attempts: list[Attempt] = field(default_factory=list)
    not_sent: int = 0  # over the in-flight cap: the generator itself could not keep the schedule

    @property
    def accepted(self) -> list[Attempt]:
        return [a for a in self.attempts if 200 <= a.status < 300]

    @property
    def accepted_per_s(self) -> float:
        accepted = self.accepted
        if not accepted:
            return 0.0
        first = min(a.sent_at for a in self.attempts)
        last = max(a.sent_at + a.latency_s for a in accepted)
        return len(accepted) / max(last - first, self.duration_s)

    def latency_ms(self, q: float) -> float:
        return percentile([a.latency_s * 1000 for a in self.accepted], q)

    def failures(self) -> dict[int, int]:
        counts: dict[int, int] = {}
        for attempt in self.attempts:
            if not 200 <= attempt.status < 300:
                counts[attempt.status] = counts.get(attempt.status, 0) + 1
        return counts


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0-100); NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


class ReferralLoad:
    """Submits sample referrals to intake at a fixed rate, round-robin over the callers' tokens."""

    def __init__(
        self, *, intake_url: str, tokens: Sequence[str], seed: int = 7, timeout_s: float = 10.0
    ) -> None:
        self._url = f"{intake_url}/v1/referrals"
        self._tokens = list(tokens)
        self._rng = random.Random(seed)
        self._client = httpx.AsyncClient(
            timeout=timeout_s, limits=httpx.Limits(max_connections=256, max_keepalive_connections=256)
        )
        self._sent = 0

    async def close(self) -> None:
        await self._client.aclose()

    async def run(
        self,
        *,
        rate: float,
        duration_s: float,
        max_in_flight: int = 1000,
        stop: asyncio.Event | None = None,
        result: LoadResult | None = None,
    ) -> LoadResult:
        """Send for `duration_s` (or until `stop` is set), then wait for the answers still due.

        Pass `result` to watch the attempts while the run is going on.
        """
        result = result or LoadResult(rate=rate, duration_s=duration_s)
        in_flight: set[asyncio.Task[None]] = set()
        start = time.monotonic()
        for i in range(max(1, round(rate * duration_s))):
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                if stop is None:
                    await asyncio.sleep(delay)
                else:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), timeout=delay)
            if stop is not None and stop.is_set():
                break
            if len(in_flight) >= max_in_flight:
                result.not_sent += 1
                continue
            task = asyncio.create_task(self._submit(result))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
        result.duration_s = time.monotonic() - start
        if in_flight:
            await asyncio.gather(*in_flight)
        return result

    async def _submit(self, result: LoadResult) -> None:
        token = self._tokens[self._sent % len(self._tokens)]
        self._sent += 1
        body = sample_referral(self._rng)
        sent_at, started = time.time(), time.perf_counter()
        try:
            response = await self._client.post(
                self._url, json=body, headers={"authorization": f"Bearer {token}"}
            )
            status = response.status_code
            referral_id = response.json().get("id") if 200 <= status < 300 else None
        except httpx.HTTPError:
            status, referral_id = NO_ANSWER, None
        result.attempts.append(Attempt(sent_at, time.perf_counter() - started, status, referral_id))
