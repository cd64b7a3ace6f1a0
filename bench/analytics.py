"""Analytics speed: projection ingest in events/s per process (batched), and p50/p95 of the
main pulse queries over the projections of 100k and 1M events.

    uv run --extra embedded python bench/analytics.py [--events 100000 1000000] [--batch N] [--no-docs]
                                                      [--full-collection-after N]

It prints its figures and writes them to docs/analytics-performance.md.

Targets (issue 5): >= 5,000 events/s per process, batched; query p95 < 50 ms. Events are
synthetic (a year of referrals across two areas, their offers, moves and outcomes), by default
in the order they happen (`--order referral` keeps each referral's events together, which
flatters ingest). They are folded through the same pipeline the live consumer uses (each batch
folded while the one before commits: projections/pipeline.py), into an embedded SecantusDB started
on a free port (a fresh one for each size), and handed to the process's in-memory index as the
consumer does (the index also follows the MongoDB change stream, as in the service); no Kafka
(that is the consumer's cost, not the projection's), but each batch is decoded from the bytes a
Kafka record holds, by the consumer's own `decode`, inside the clocks. Events are made outside the clocks (kept as bytes while they wait
for their time: a heap of live objects would only slow Python's garbage collector), `AHEAD`
batches at a time with the pipeline drained meanwhile, which costs the overlap of one batch in
`AHEAD`. Queries run through the pulse service on an index loaded back from MongoDB, as a
starting process loads it.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import heapq
import itertools
import os
import platform
import random
import resource
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from aiokafka import ConsumerRecord
from pymongo import AsyncMongoClient
from signpost.analytics.projections.cache import WriteCache
from signpost.analytics.projections.consumer import decode
from signpost.analytics.projections.follower import FactsFollower
from signpost.analytics.projections.index import FactIndex
from signpost.analytics.projections.pipeline import FULL_COLLECTION_AFTER, FoldPipeline, collect_less_often
from signpost.analytics.projections.sets import INITIAL_SET, ProjectionSet, create_indexes
from signpost.analytics.pulse import service
from signpost.analytics.pulse.measures import MEASURES
from signpost.analytics.pulse.reader import Period
from signpost.shared.events import Envelope, EventData, ReferralSubmittedV1, to_kafka_headers, to_kafka_value
from signpost.shared.settings import Settings
from signpost.shared.vocabulary import (
    DeclineReason,
    EscalationReason,
    LevelOfNeed,
    NeedCode,
    NeedsDomain,
    Outcome,
    Sector,
    WithdrawReason,
)

from signpost.platform.benchkit import scratch_mongodb
from signpost.platform.lifecycles import ReferralEvents, offer

TENANTS = ["E06000023", "E06000022"]
LOCALITIES = [f"locality-{i}" for i in range(10)]
SETTINGS = [f"setting-{i:03d}" for i in range(150)]
PROVISIONS = [(f"prov-{i:02d}", list(Sector)[i % 4]) for i in range(40)]
NEEDS = list(NeedCode)
START = date(2025, 1, 1)
DAYS = 365
AHEAD = 10  # batches made before they are folded (see above)


def synthetic_events(count: int, seed: int = 7) -> Iterator[Envelope[EventData]]:
    """About six events per referral, in submission order over a year."""
    rng = random.Random(seed)
    referrals = count // 5 + 1  # a little under five events each on average
    children = [f"child-{i}" for i in range(int(referrals * 0.8))]
    produced = 0
    n = -1
    while produced < count:
        n += 1
        tenant = TENANTS[n % len(TENANTS)]
        submitted_at = datetime.combine(START, datetime.min.time(), UTC) + timedelta(
            days=DAYS * n / referrals, minutes=rng.randint(0, 600)
        )
        needs = list(dict.fromkeys(rng.choices(NEEDS, k=rng.randint(1, 2))))

        referral = ReferralEvents(f"ref-{n}", tenant=tenant, source="bench")
        batch = [
            referral.submitted(
                at=submitted_at,
                needs=needs,
                age_years=rng.randint(2, 16),
                locality=rng.choice(LOCALITIES),
                setting_id=rng.choice(SETTINGS),
                level_of_need=rng.choice(list(LevelOfNeed)),
                child_ref=rng.choice(children),
                needs_profile={
                    NeedsDomain.COMMUNICATION_AND_INTERACTION: 3,
                    NeedsDomain.FAMILY_AND_HOME: 2,
                },
            )
        ]
        roll = rng.random()
        if roll < 0.05:
            batch.append(
                referral.escalated(
                    at=submitted_at, reason=rng.choice(list(EscalationReason)), locality="x", setting_id="x"
                )
            )
        elif roll < 0.12:
            batch.append(referral.unmatched(at=submitted_at, unmet_needs=needs, locality="x"))
        else:
            provision_id, sector = rng.choice(PROVISIONS)
            at = submitted_at + timedelta(minutes=rng.randint(1, 30))
            made = offer(provision_id, sector=sector, needs_met=needs, organisation_id="org")
            batch.append(referral.routed(at=at, offers=[made]))
            if rng.random() < 0.15:
                batch.append(referral.declined(made, at=at, reason=rng.choice(list(DeclineReason))))
            else:
                at += timedelta(days=rng.randint(1, 10))
                batch.append(referral.accepted(made, at=at))
                at += timedelta(days=rng.randint(1, 40))
                batch.append(referral.started(made, at=at))
                at += timedelta(days=rng.randint(20, 90))
                batch.append(
                    referral.completed(
                        made,
                        at=at,
                        outcome=rng.choice(list(Outcome)),
                        needs_profile_after={NeedsDomain.COMMUNICATION_AND_INTERACTION: rng.randint(0, 4)},
                    )
                )
            if rng.random() < 0.05:
                batch.append(referral.withdrawn(at=at, reason=WithdrawReason.NEEDS_MET))
        for envelope in batch:
            if produced == count:
                return
            produced += 1
            yield envelope


Serialized = tuple[bytes, tuple[tuple[str, bytes], ...]]  # a Kafka record's value and headers


def serialized(envelope: Envelope[EventData]) -> Serialized:
    headers = tuple((name, value.encode()) for name, value in to_kafka_headers(envelope).items())
    return to_kafka_value(envelope), headers


def as_live(stream: Iterable[Envelope[EventData]]) -> Iterator[Serialized]:
    """The same events in the order they happen, as the live consumer and a rebuild read them:
    a referral's later moves arrive days to months after it, among other referrals' events."""
    waiting: list[tuple[datetime, int, Serialized]] = []
    for seq, envelope in enumerate(stream):
        moment = happened_at(envelope.data)
        if isinstance(envelope.data, ReferralSubmittedV1):
            while waiting and waiting[0][0] <= moment:
                yield heapq.heappop(waiting)[2]
        heapq.heappush(waiting, (moment, seq, serialized(envelope)))
    while waiting:
        yield heapq.heappop(waiting)[2]


async def next_batches(stream: Iterator[Serialized], batch_size: int) -> list[list[Serialized]]:
    """The next AHEAD batches, giving way to the event loop as they are made, as records arriving
    from Kafka would: the follower goes on looking at the writers' leases every second meanwhile.
    Made in one go, the events of ten batches held the loop for longer than the fold trusts to be
    alone between two looks, so the next batch dropped the cache and was folded from MongoDB."""
    batches: list[list[Serialized]] = []
    for _ in range(AHEAD):
        batch: list[Serialized] = []
        for record in itertools.islice(stream, batch_size):
            batch.append(record)
            if len(batch) % 1000 == 0:
                await asyncio.sleep(0)
        if batch:
            batches.append(batch)
    return batches


def as_records(batch: list[Serialized], offset: int) -> list[ConsumerRecord[bytes, bytes]]:
    return [
        ConsumerRecord("bench", 0, offset + n, 0, 0, None, value, None, 0, len(value), headers)
        for n, (value, headers) in enumerate(batch)
    ]


def happened_at(data: EventData) -> datetime:
    for name in ("submitted_at", "escalated_at", "decided_at", "routed_at", "withdrawn_at", "at"):
        moment = getattr(data, name, None)
        if isinstance(moment, datetime):
            return moment
    raise ValueError(f"no time in {type(data).__name__}")


def percentile(samples: list[float], fraction: float) -> float:
    return sorted(samples)[min(len(samples) - 1, int(len(samples) * fraction))]


async def timed(call: Callable[[], Awaitable[Any]], repeats: int) -> tuple[float, float]:
    samples = []
    for _ in range(repeats):
        began = time.perf_counter()
        await call()
        samples.append((time.perf_counter() - began) * 1000)
    return statistics.median(samples), percentile(samples, 0.95)


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process so far (Linux): a figure the machine's other load barely moves."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CollectorClock:
    """CPU time the garbage collector has taken in this process since `start`."""

    def __init__(self) -> None:
        self.spent = 0.0
        self._began = 0.0

    def start(self) -> None:
        gc.callbacks.append(self._tick)

    def stop(self) -> None:
        gc.callbacks.remove(self._tick)

    def _tick(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._began = time.process_time()
        else:
            self.spent += time.process_time() - self._began


@dataclass
class Figures:
    events: int
    order: str
    batch: int
    events_per_s: float
    analytics_cpu_ms: float  # per 1,000 events
    decode_cpu_ms: float  # of which decoding the records
    gc_cpu_ms: float  # of which the garbage collector
    server_cpu_ms: float
    written_ahead: str  # batches written as folded while the one before committed, of all
    referrals: int
    load_s: float
    index_mib: float
    peak_rss_mib: float
    load: tuple[float, float]  # the machine's 1-minute load average when ingest began and ended
    queries: dict[str, tuple[float, float]] = field(default_factory=dict)  # p50, p95 ms

    def lines(self) -> list[str]:
        both = self.analytics_cpu_ms + self.server_cpu_ms
        busier = max(self.analytics_cpu_ms, self.server_cpu_ms)
        return [
            f"{self.events:,} events in {self.order} order, batches of {self.batch}: "
            f"ingest {self.events_per_s:,.0f} events/s per process (target >= 5,000); machine load "
            f"average {self.load[0]:.1f} when it began, {self.load[1]:.1f} when it ended (this bench adds up to 2)",
            f"CPU per 1,000 events: analytics {self.analytics_cpu_ms:,.0f} ms (of which decoding the records "
            f"{self.decode_cpu_ms:,.0f} ms, the garbage collector {self.gc_cpu_ms:,.0f} ms) + MongoDB "
            f"server {self.server_cpu_ms:,.0f} ms; folded while the batch before commits ({self.written_ahead} "
            f"batches written so), the two overlap: on two otherwise idle cores the busier of the two allows "
            f"{1e6 / busier:,.0f} events/s (one after the other: {1e6 / both:,.0f} events/s)",
            f"index: {self.referrals:,} referrals loaded from MongoDB in {self.load_s:.1f} s; "
            f"{self.index_mib:,.0f} MiB of arrays; process peak RSS {self.peak_rss_mib:,.0f} MiB",
        ]


async def run(
    url: str, server_pid: int, events: int, batch_size: int, repeats: int, order: str, full_after: int
) -> Figures:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(url, tz_aware=True)
    db = client[f"bench_{events}_{order}"]
    target = ProjectionSet(INITIAL_SET)
    await create_indexes(db, target)
    stream = (
        map(serialized, synthetic_events(events))
        if order == "referral"
        else as_live(synthetic_events(events))
    )
    # As in the service: an index following the facts through the change stream, handed each commit.
    follower = FactsFollower(db)
    following = asyncio.create_task(follower.run())
    live = await follower.index(target, wait_s=60)
    collect_less_often(after=full_after)  # as the consumer does
    settings = Settings()
    pipeline: FoldPipeline[int] = FoldPipeline(
        client, db, facts=follower, cache=WriteCache(size=settings.analytics_cache_documents)
    )
    elapsed, folded, own_cpu, server_cpu, decode_cpu, gc_cpu = 0.0, 0, 0.0, 0.0, 0.0, 0.0
    collector = CollectorClock()
    collector.start()
    load_before = os.getloadavg()[0]
    while batches := await next_batches(stream, batch_size):
        began, own, server = time.perf_counter(), time.process_time(), cpu_seconds(server_pid)
        collecting = collector.spent
        for number, batch in enumerate(batches):
            decoding = time.process_time()
            decoded, invalid = decode(as_records(batch, folded), max_bytes=settings.event_max_bytes)
            decode_cpu += time.process_time() - decoding
            assert not invalid, invalid
            await pipeline.push(number, [envelope for _, envelope in decoded], targets=[target])
        await pipeline.flush()
        elapsed += time.perf_counter() - began
        own_cpu += time.process_time() - own
        gc_cpu += collector.spent - collecting
        server_cpu += cpu_seconds(server_pid) - server
        folded += sum(len(batch) for batch in batches)
    collector.stop()
    load_after = os.getloadavg()[0]
    began = time.perf_counter()  # what a starting analytics process does before it answers
    index = FactIndex()
    async for fact in db[target.facts].find({}):
        index.upsert(fact)
    figures = Figures(
        events=folded,
        order=order,
        batch=batch_size,
        events_per_s=folded / elapsed,
        analytics_cpu_ms=own_cpu / folded * 1e6,
        decode_cpu_ms=decode_cpu / folded * 1e6,
        gc_cpu_ms=gc_cpu / folded * 1e6,
        server_cpu_ms=server_cpu / folded * 1e6,
        written_ahead=f"{pipeline.written_ahead} of {pipeline.committed}",
        referrals=len(index),
        load_s=time.perf_counter() - began,
        index_mib=index.nbytes() / 2**20,
        peak_rss_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10,
        load=(load_before, load_after),
    )
    print("", *figures.lines(), sep="\n")
    everything = [(START, START + timedelta(days=DAYS + 200))]
    assert index.totals(tenant=TENANTS[0], periods=everything) == live.totals(
        tenant=TENANTS[0], periods=everything
    ), "the loaded index must count what the live one counted"
    following.cancel()
    await asyncio.gather(following, return_exceptions=True)

    year, month = Period(START, START + timedelta(days=DAYS - 1)), Period(date(2025, 6, 3), date(2025, 6, 30))

    def query(period: Period, **filters: str) -> service.Query:
        return service.Query(
            db=db, target=target, facts=index, tenant=TENANTS[0], period=period,
            filters=service.Filters(**filters), protect=True,
        )  # fmt: skip

    cases: dict[str, Callable[[], Awaitable[Any]]] = {
        "summary, 28 days": lambda: service.summary(query(month)),
        "summary, a year": lambda: service.summary(query(year)),
        "summary, a year, one locality": lambda: service.summary(query(year, locality="locality-3")),
        "breakdown by setting, a year": lambda: service.breakdown(
            query(year), measure=MEASURES["submitted"], group_by="setting"
        ),
        "breakdown by locality, need ASD, a year": lambda: service.breakdown(
            query(year, need="ASD"), measure=MEASURES["escalation_rate"], group_by="locality"
        ),
        "weekly trend, a year": lambda: service.trend(
            query(year), measure=MEASURES["submitted"], interval="week"
        ),
        "accepted, ASD in locality-3, by provision": lambda: service.breakdown(
            query(year, locality="locality-3", need="ASD"), measure=MEASURES["accepted"], group_by="provision"
        ),
        "what works by provision, a year": lambda: service.what_works(query(year), group_by="provision"),
        "unmet demand, a year": lambda: service.unmet_demand(query(year)),
    }
    print(f"{'query (target p95 < 50 ms)':<42} {'p50 ms':>8} {'p95 ms':>8}")
    for name, call in cases.items():
        await call()  # warm: the first call of a kind pays for imports and connections once
        p50, p95 = await timed(call, repeats)
        figures.queries[name] = (p50, p95)
        print(f"{name:<42} {p50:>8.1f} {p95:>8.1f}")
    await client.close()
    return figures


def write_docs(runs: list[Figures], command: str) -> None:
    """docs/analytics-performance.md: the figures of this run, as printed."""
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# Performance: analytics ingest and pulse queries",
        "",
        f"Written by `{command}` (do not edit by hand; run it again). Last run {when} on "
        f"{platform.machine()}, {os.cpu_count()} CPU(s), Python {platform.python_version()}, against an "
        "embedded SecantusDB (pure Python) on the same machine. Wall-clock figures move with whatever "
        "else the machine is doing; CPU time per 1,000 events barely does. Targets (issue 5): ingest "
        ">= 5,000 events/s per process, batched; pulse query p95 < 50 ms.",
    ]
    for one in runs:
        lines += ["", f"## {one.events:,} events", "", *(f"- {line}" for line in one.lines()), ""]
        lines += [
            "| query (one of two areas, as an analyst) | p50 ms | p95 ms | p95 < 50 ms |",
            "| --- | --- | --- | --- |",
        ]
        lines += [
            f"| {name} | {p50:.1f} | {p95:.1f} | {'yes' if p95 < 50 else '**no**'} |"
            for name, (p50, p95) in one.queries.items()
        ]
    (Path(__file__).resolve().parent.parent / "docs" / "analytics-performance.md").write_text(
        "\n".join(lines) + "\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument(
        "--batch",
        type=int,
        default=Settings().analytics_batch_max,
        help="events per transaction (default: the consumer's)",
    )
    parser.add_argument("--repeats", type=int, default=40)
    parser.add_argument(
        "--order",
        choices=["live", "referral"],
        default="live",
        help="live: events in the order they happen (default); referral: each referral's events together",
    )
    parser.add_argument(
        "--full-collection-after",
        type=int,
        default=FULL_COLLECTION_AFTER,
        help="full garbage collections after this many of the middle generation (default: the consumer's)",
    )
    parser.add_argument(
        "--no-docs", action="store_true", help="print only; leave docs/analytics-performance.md alone"
    )
    args = parser.parse_args()
    runs = []
    for events in args.events:
        with scratch_mongodb() as server:  # a fresh one for each size: one run's data cannot slow the next
            runs.append(
                asyncio.run(
                    run(
                        server.url,
                        server.process.pid,
                        events,
                        args.batch,
                        args.repeats,
                        args.order,
                        args.full_collection_after,
                    )
                )
            )
    if not args.no_docs:
        write_docs(runs, "uv run --extra embedded python bench/analytics.py " + " ".join(sys.argv[1:]))


if __name__ == "__main__":
    main()
