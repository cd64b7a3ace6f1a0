"""An open-loop HTTP load generator for intake: referrals go out on schedule, whether or not earlier
ones have been answered (a closed loop would slow down with the server and hide its queueing).

Each request is timed from its scheduled slot, not from when its task got to run: a generator
running late, or a request waiting for a free connection, counts against the latency as it would
for a caller arriving on time (no coordinated omission).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import urlsplit

from signpost.platform.samples import sample_referral

NO_ANSWER = 0


@dataclass(frozen=True)
class Attempt:
    sent_at: float  # the scheduled slot, wall clock (time.time()), to line up with server timestamps
    latency_s: float  # from the scheduled slot to the answer (or to the timeout firing)
    status: int  # NO_ANSWER when the connection failed or timed out
    referral_id: str | None
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


@dataclass
class LoadResult:
    rate: float
    duration_s: float
    attempts: list[Attempt] = field(default_factory=list)
    not_sent: int = 0  # over the in-flight cap: the generator itself could not keep the schedule

    @property
    def accepted(self) -> list[Attempt]:
        return [a for a in self.attempts if a.ok]

    @property
    def scheduled(self) -> int:
        """Every slot of the schedule: sent or not."""
        return len(self.attempts) + self.not_sent

    @property
    def failed(self) -> int:
        """Sent and not accepted: a non-2xx answer, a timeout or a failed connection."""
        return sum(1 for a in self.attempts if not a.ok)

    @property
    def timed_out(self) -> int:
        return sum(1 for a in self.attempts if a.timed_out)

    @property
    def not_accepted(self) -> int:
        """Every slot that did not end in a 2xx: failures and those never sent."""
        return self.failed + self.not_sent

    @property
    def accepted_per_s(self) -> float:
        """Accepted per second of the run (slots never sent count as not accepted)."""
        accepted = self.accepted
        if not accepted:
            return 0.0
        first = min(a.sent_at for a in self.attempts)
        last = max(a.sent_at + a.latency_s for a in accepted)
        return len(accepted) / max(last - first, self.duration_s)

    def latency_ms(self, q: float) -> float:
        """Percentile of the accepted requests' latencies and the timed-out ones' (at the time the
        timeout fired, which is at least the timeout): a request that never came back is slower
        than every answered one, not absent. Other failures (non-2xx answers, refused connections)
        are quick and are counted as failures, not latencies."""
        return percentile([a.latency_s * 1000 for a in self.attempts if a.ok or a.timed_out], q)

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


class _ClosedBeforeAnswer(ConnectionError):
    """The server had closed the connection: it received nothing and answered nothing."""


class KeepAliveClient:
    """A lean HTTP/1.1 client over persistent connections, for load generation only: httpx spends
    2-3 ms of CPU per request, which on a small machine makes the generator the bottleneck."""

    def __init__(self, base_url: str, *, max_connections: int, timeout_s: float) -> None:
        address = urlsplit(base_url)
        self._host, self._port = address.hostname or "127.0.0.1", address.port or 80
        self._timeout_s = timeout_s
        self._slots = asyncio.Semaphore(max_connections)
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def post_json(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        """Status and body; a connection that fails or times out is dropped and the error raised."""
        head = (
            f"POST {path} HTTP/1.1\r\nhost: {self._host}:{self._port}\r\ncontent-type: application/json\r\n"
        )
        head += "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        request = f"{head}content-length: {len(body)}\r\n\r\n".encode() + body
        async with self._slots:
            while self._idle:
                # The server may have closed an idle connection (uvicorn: after 5 s): then it
                # received nothing and answered nothing, so sending again on a new one is safe.
                try:
                    return await self._send(self._idle.pop(), request)
                except _ClosedBeforeAnswer:
                    continue
            return await self._send(await asyncio.open_connection(self._host, self._port), request)

    async def _send(
        self, connection: tuple[asyncio.StreamReader, asyncio.StreamWriter], request: bytes
    ) -> tuple[int, bytes]:
        try:
            status, payload, keep = await asyncio.wait_for(
                self._exchange(*connection, request), self._timeout_s
            )
        except BaseException:
            connection[1].close()
            raise
        if keep:
            self._idle.append(connection)
        else:
            connection[1].close()
        return status, payload

    @staticmethod
    async def _exchange(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
    ) -> tuple[int, bytes, bool]:
        writer.write(request)
        await writer.drain()
        status_line = await reader.readline()
        if not status_line:  # a clean close, not a reset mid-answer (which might have been processed)
            raise _ClosedBeforeAnswer
        status = int(status_line.split(b" ", 2)[1])
        length, keep = 0, True
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            if name.lower() == "content-length":
                length = int(value)
            elif name.lower() == "connection" and value.strip().lower() == "close":
                keep = False
        return status, await reader.readexactly(length), keep

    async def close(self) -> None:
        for _, writer in self._idle:
            writer.close()
        self._idle.clear()


class PostClient(Protocol):
    async def post_json(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]: ...

    async def close(self) -> None: ...


class ReferralLoad:
    """Submits sample referrals to intake at a fixed rate, round-robin over the callers' tokens.

    `client` and `clock` (monotonic seconds) are for tests: by default a KeepAliveClient to
    `intake_url` and time.perf_counter."""

    def __init__(
        self,
        *,
        intake_url: str,
        tokens: Sequence[str],
        seed: int = 7,
        timeout_s: float = 10.0,
        client: PostClient | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self._client: PostClient = client or KeepAliveClient(
            intake_url, max_connections=256, timeout_s=timeout_s
        )
        self._clock = clock
        self._tokens = list(tokens)
        self._rng = random.Random(seed)
        self._sent = 0

    async def close(self) -> None:
        await self._client.close()

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
        start, wall_start = self._clock(), time.time()
        for i in range(max(1, round(rate * duration_s))):
            slot = start + i / rate
            delay = slot - self._clock()
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
            task = asyncio.create_task(self._submit(result, slot=slot, sent_at=wall_start + i / rate))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
        result.duration_s = self._clock() - start
        if in_flight:
            await asyncio.gather(*in_flight)
        return result

    async def _submit(self, result: LoadResult, *, slot: float, sent_at: float) -> None:
        """One referral, timed from its scheduled `slot` (this loop's clock); `sent_at` is the
        slot on the wall clock."""
        token = self._tokens[self._sent % len(self._tokens)]
        self._sent += 1
        body = json.dumps(sample_referral(self._rng)).encode()
        timed_out = False
        try:
            status, payload = await self._client.post_json(
                "/v1/referrals", body, {"authorization": f"Bearer {token}"}
            )
            referral_id = json.loads(payload).get("id") if 200 <= status < 300 else None
        except TimeoutError:
            status, referral_id, timed_out = NO_ANSWER, None, True
        except (OSError, ValueError, IndexError, asyncio.IncompleteReadError):
            status, referral_id = NO_ANSWER, None
        result.attempts.append(Attempt(sent_at, self._clock() - slot, status, referral_id, timed_out))
