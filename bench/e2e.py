"""End-to-end benchmark: the whole platform on embedded servers, driven over HTTP, measured against
the raw limits of the same servers on the same machine, printed as a table and written to
docs/performance.md.

    uv run --extra embedded python bench/e2e.py            # full run: 10 minutes at 100 referrals/s (~15 min)
    uv run --extra embedded python bench/e2e.py --quick    # a few minutes, short phases
    uv run --extra embedded python bench/e2e.py --rate 50 --duration 120 --no-docs

What it does, in one run:
1. starts Tansu, SecantusDB and intake, routing and analytics as separate processes
   (`signpost.platform.cluster`, the same harness as the fault tests);
2. raw limits: durable (j=True) single-document inserts on the same MongoDB server,
   sequential and 16 at a time; aiokafka produce (acks=all) and consume rates on the
   same broker; a bare FastAPI endpoint (bench/bare_fastapi.py, uvicorn, one process)
   ramped to saturation with the same load generator and request bodies;
3. intake ramped open-loop to saturation (rates doubling until accepted/s falls below 90%
   of offered, or p99 passes 2 s) with the whole platform running, then half of that peak
   for request latency; then ramped again with routing and analytics stopped, for intake's
   own ceiling apart from the consumers' share of the one database server;
4. a sustained run at --rate for --duration: accepted/s, request latency, submit->routed
   (the decision event seen on the referrals topic) and submit->counted (analytics' consumer
   group committing its offset past the submitted event, within 0.1 s), and consumer lag
   sampled over time.

Targets (issue 8): intake peak >= 80% of the raw durable-write rate; p99 < 50 ms at half of
peak; submit->counted p50 < 100 ms and p99 < 500 ms at 100 referrals/s for 10 minutes with
no growth in lag. It is not part of the test suite: the tests never time anything.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import resource
import signal
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from pymongo import AsyncMongoClient, WriteConcern
from signpost.shared.settings import SERVICE_NAMES, ServiceName

from signpost.platform.benchkit import (
    GroupLag,
    PipelineObserver,
    bench_cluster,
    cluster_cpu_seconds,
    cluster_topics,
    practitioner_tokens,
    run_fast,
    wait_caught_up,
)
from signpost.platform.cluster import LocalCluster
from signpost.platform.embedded import EmbeddedUnavailable
from signpost.platform.loadgen import LoadResult, ReferralLoad, percentile
from signpost.platform.processes import ManagedProcess, free_port, port_is_open, stop_all
from signpost.platform.samples import sample_referral

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "performance.md"
RAMP_START = 10.0
MAX_RAMP_RATE = 5000.0
LOAD_GENERATOR = "load generator"  # this process: it also reads the topic and the group offsets


@dataclass
class Row:
    figure: str
    value: str
    limit: str = ""
    ratio: str = ""
    target: str = ""
    met: str = ""


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    ramps: dict[str, list[LoadResult]] = field(default_factory=dict)
    lag: list[tuple[float, dict[str, int]]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, figure: str, value: str, limit: str = "", ratio: float | None = None, target: str = "",
            met: bool | None = None) -> None:  # fmt: skip
        self.rows.append(Row(figure, value, limit, "" if ratio is None else f"{ratio:.2f}", target,
                             "" if met is None else ("yes" if met else "**no**")))  # fmt: skip


# -- raw limits --------------------------------------------------------------------------------


async def mongo_durable_writes(url: str, seconds: float, concurrency: int) -> float:
    """Durable (journaled) single-document inserts per second on the given server.

    Plain writes, not retryable ones: SecantusDB keeps the last 10,000 retryable-write replies and,
    once it holds that many, sorts them all on every further one, which would halve the figure
    partway through (the services write in transactions, which it does not record). The documents
    are left in place: dropping tens of thousands of them stalls every writer on SecantusDB for a
    minute or more, which would then be charged to the platform's phases."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(url, retryWrites=False)
    collection = client["bench_raw"].get_collection("writes", write_concern=WriteConcern(w=1, j=True))
    rng = random.Random(1)
    document = sample_referral(rng)
    done = 0
    deadline = time.perf_counter() + seconds

    async def writer() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            await collection.insert_one({"_id": uuid.uuid4().hex, **document})
            done += 1

    started = time.perf_counter()
    await asyncio.gather(*(writer() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    await client.close()
    return done / elapsed


async def kafka_rates(bootstrap: str, messages: int) -> tuple[float, float]:
    """aiokafka produce (acks=all, keyed, ~1 KiB) and consume rates, messages per second."""
    topic = f"bench-raw-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(topic, 6, 1)])
    await admin.close()
    value = os.urandom(512).hex().encode()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=False)
    await producer.start()
    started = time.perf_counter()
    pending = []
    for i in range(messages):
        pending.append(await producer.send(topic, value, key=str(i).encode()))
        if len(pending) >= 1000:
            await asyncio.gather(*pending)
            pending.clear()
    await asyncio.gather(*pending)
    produce_rate = messages / (time.perf_counter() - started)
    await producer.stop()
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    partitions = [TopicPartition(topic, p) for p in range(6)]
    consumer.assign(partitions)
    await consumer.seek_to_beginning(*partitions)
    started = time.perf_counter()
    read = 0
    while read < messages:
        batches = await consumer.getmany(timeout_ms=1000, max_records=5000)
        read += sum(len(records) for records in batches.values())
    consume_rate = read / (time.perf_counter() - started)
    await consumer.stop()
    return produce_rate, consume_rate


# -- load --------------------------------------------------------------------------------------


async def ramp(
    load: ReferralLoad, *, step_s: float, settle: Callable[[], Awaitable[None]]
) -> list[LoadResult]:
    """Open-loop steps, doubling the rate until the target stops keeping up."""
    steps = []
    rate = RAMP_START
    while rate <= MAX_RAMP_RATE:
        result = await load.run(rate=rate, duration_s=step_s)
        steps.append(result)
        _say(f"  {rate:>6.0f}/s offered: {result.accepted_per_s:7.1f}/s accepted, p99 {result.latency_ms(99):7.1f} ms,"
             f" not accepted {sum(result.failures().values())}")  # fmt: skip
        await settle()
        saturated = (
            result.accepted_per_s < 0.9 * rate
            or result.latency_ms(99) > 2000
            or sum(result.failures().values()) > 0.01 * len(result.attempts)
        )
        if saturated:
            break
        rate *= 2
    return steps


def ceiling_note(name: str, steps: list[LoadResult]) -> list[str]:
    """Say so when a ramp stopped at its ceiling rather than at saturation: the peak is then a floor."""
    if steps and steps[-1].rate * 2 > MAX_RAMP_RATE and steps[-1].accepted_per_s >= 0.9 * steps[-1].rate:
        return [f"{name} kept up at the ramp's ceiling ({steps[-1].rate:,.0f}/s): its peak is at least that"]
    return []


def peak(steps: list[LoadResult]) -> float:
    return max(step.accepted_per_s for step in steps)


class LagSampler:
    """Consumer lag of every service's group on the referrals topic, sampled every `every_s`."""

    def __init__(self, lag: GroupLag, every_s: float) -> None:
        self._lag = lag
        self._every_s = every_s
        self.samples: list[tuple[float, dict[str, int]]] = []
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._sample())

    async def _sample(self) -> None:
        started = time.monotonic()
        while True:
            self.samples.append((time.monotonic() - started, await self._lag.lag()))
            await asyncio.sleep(self._every_s)

    def stop(self) -> None:
        if self._task:
            self._task.cancel()


# -- the run -----------------------------------------------------------------------------------


async def run(args: argparse.Namespace, cluster: LocalCluster, bare_url: str) -> Report:
    assert cluster.kafka is not None and cluster.mongodb is not None
    report = Report()
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(cluster.mongodb.url, tz_aware=True)
    group_lag = GroupLag(cluster.kafka.url, cluster_topics(cluster))
    await group_lag.start()
    catch_up_s = 120.0 if args.quick else 600.0

    async def drained() -> None:
        """Wait for the platform to catch up (every referral decided, outboxes empty, no lag)."""
        if not await wait_caught_up(mongo, cluster, group_lag, timeout_s=catch_up_s):
            report.notes.append(f"the platform had not caught up {catch_up_s:.0f} s after a phase")

    load = ReferralLoad(intake_url=cluster.url("intake"), tokens=practitioner_tokens(cluster), seed=11)
    try:
        if not args.sustained_only:
            await limits_and_ramps(args, cluster, bare_url, report, load=load, drained=drained)
        await sustained(args, cluster, report, load=load, group_lag=group_lag, drained=drained)
    finally:
        await group_lag.stop()
        await mongo.close()
        await load.close()
    return report


async def limits_and_ramps(
    args: argparse.Namespace,
    cluster: LocalCluster,
    bare_url: str,
    report: Report,
    *,
    load: ReferralLoad,
    drained: Callable[[], Awaitable[None]],
) -> None:
    """The raw limits of the same servers, then intake ramped to saturation and run at half its peak."""
    assert cluster.kafka is not None and cluster.mongodb is not None
    raw_s = 5.0 if args.quick else 15.0
    step_s = 4.0 if args.quick else 10.0

    _say("raw limits: MongoDB durable single-document writes")
    sequential = await mongo_durable_writes(cluster.mongodb.url, raw_s, 1)
    concurrent = await mongo_durable_writes(cluster.mongodb.url, raw_s, 16)
    mongo_limit = max(sequential, concurrent)
    report.add("MongoDB durable inserts/s (j=True), 1 writer", f"{sequential:,.0f}")
    report.add("MongoDB durable inserts/s (j=True), 16 writers", f"{concurrent:,.0f}")
    _say("raw limits: aiokafka produce and consume")
    produce, consume = await kafka_rates(cluster.kafka.url, 20_000 if args.quick else 100_000)
    report.add("aiokafka produce msgs/s (acks=all, 1 KiB)", f"{produce:,.0f}")
    report.add("aiokafka consume msgs/s", f"{consume:,.0f}")

    _say("raw limits: bare FastAPI endpoint, open-loop ramp")
    bare_load = ReferralLoad(intake_url=bare_url, tokens=["none"], seed=3)
    bare_steps = await ramp(bare_load, step_s=step_s, settle=_nothing)
    bare_peak = peak(bare_steps)
    bare_half = await bare_load.run(rate=bare_peak / 2, duration_s=step_s)
    await bare_load.close()
    report.ramps["bare FastAPI"] = bare_steps
    report.notes += ceiling_note("bare FastAPI", bare_steps)
    report.add("bare FastAPI peak requests/s", f"{bare_peak:,.0f}")
    report.add(
        f"bare FastAPI p99 at half peak ({bare_peak / 2:,.0f}/s)", f"{bare_half.latency_ms(99):.1f} ms"
    )

    _say("intake: open-loop ramp to saturation")
    intake_steps = await ramp(load, step_s=step_s, settle=drained)
    report.ramps["intake"] = intake_steps
    report.notes += ceiling_note("intake", intake_steps)
    intake_peak = peak(intake_steps)
    ratio = intake_peak / mongo_limit
    report.add("intake peak accepted referrals/s, whole platform running", f"{intake_peak:,.0f}", f"{mongo_limit:,.0f} durable writes/s",
               ratio, ">= 0.80", ratio >= 0.8)  # fmt: skip
    report.add(
        "intake peak vs bare FastAPI", f"{intake_peak:,.0f}/s", f"{bare_peak:,.0f}/s", intake_peak / bare_peak
    )
    _say(f"intake: half of peak ({intake_peak / 2:.0f}/s)")
    half = await load.run(rate=intake_peak / 2, duration_s=step_s * 2)
    await drained()
    p99 = half.latency_ms(99)
    report.add(f"intake request p50 / p95 at half peak ({intake_peak / 2:,.0f}/s)",
               f"{half.latency_ms(50):.1f} / {half.latency_ms(95):.1f} ms")  # fmt: skip
    report.add(f"intake request p99 at half peak ({intake_peak / 2:,.0f}/s)", f"{p99:.1f} ms",
               f"{bare_half.latency_ms(99):.1f} ms bare", p99 / bare_half.latency_ms(99), "< 50 ms", p99 < 50)  # fmt: skip
    await intake_alone(
        args, cluster, report, load=load, step_s=step_s, mongo_limit=mongo_limit, drained=drained
    )
    if args.rate > intake_peak:
        report.notes.append(
            f"the sustained rate ({args.rate:g}/s) is above the peak measured in this run ({intake_peak:.0f}/s): "
            "its latencies include queueing behind a growing backlog"
        )


async def intake_alone(
    args: argparse.Namespace,
    cluster: LocalCluster,
    report: Report,
    *,
    load: ReferralLoad,
    step_s: float,
    mongo_limit: float,
    drained: Callable[[], Awaitable[None]],
) -> None:
    """Intake ramped again with routing and analytics stopped: its own ceiling, apart from the
    consumers' share of the one database server (the ramp above runs the whole platform)."""
    consumers: tuple[ServiceName, ...] = ("routing", "analytics")
    _say("intake alone: open-loop ramp with routing and analytics stopped")
    for name in consumers:
        cluster.kill(name, signal.SIGTERM)
    try:
        steps = await ramp(load, step_s=step_s, settle=_nothing)
    finally:
        for name in consumers:
            cluster.start_service(name)
        await asyncio.to_thread(cluster.wait_ready, *consumers)
    await drained()  # the consumers catch up with what intake accepted meanwhile
    report.ramps["intake, consumers stopped"] = steps
    alone = peak(steps)
    report.add("intake peak, routing and analytics stopped", f"{alone:,.0f}", f"{mongo_limit:,.0f} durable writes/s",
               alone / mongo_limit)  # fmt: skip


async def sustained(
    args: argparse.Namespace,
    cluster: LocalCluster,
    report: Report,
    *,
    load: ReferralLoad,
    group_lag: GroupLag,
    drained: Callable[[], Awaitable[None]],
) -> None:
    """A fixed rate for a while, on a drained platform: accepted/s, request latency, submit->routed and
    submit->counted, lag over time, and what each referral cost each process in CPU."""
    assert cluster.kafka is not None
    rate = args.rate
    _say(f"sustained: {rate:g} referrals/s for {args.duration:g} s")
    observer = PipelineObserver(cluster.kafka.url, cluster_topics(cluster))
    await observer.start()
    sampler = LagSampler(group_lag, every_s=2.0 if args.quick else 5.0)
    sampler.start()
    cpu_before = {**cluster_cpu_seconds(cluster), LOAD_GENERATOR: own_cpu_seconds()}
    result = await load.run(rate=rate, duration_s=args.duration)
    await drained()
    cpu_after = {**cluster_cpu_seconds(cluster), LOAD_GENERATOR: own_cpu_seconds()}
    await asyncio.sleep(1)
    await observer.stop()
    sampler.stop()
    report.lag = list(sampler.samples)
    accepted = {a.referral_id: a for a in result.accepted if a.referral_id}

    def since_submitted(seen_at: dict[str, float]) -> list[float]:
        return [(seen_at[rid] - a.sent_at) * 1000 for rid, a in accepted.items() if rid in seen_at]

    published, routed, counted = map(
        since_submitted, (observer.published_at, observer.decided_at, observer.counted_at)
    )
    report.add(f"sustained accepted referrals/s (offered {rate:g}/s for {args.duration:g} s)",
               f"{result.accepted_per_s:,.1f}", f"{rate:g}/s offered", result.accepted_per_s / rate)  # fmt: skip
    report.add(
        "sustained request p50 / p95 / p99",
        f"{result.latency_ms(50):.1f} / {result.latency_ms(95):.1f} / {result.latency_ms(99):.1f} ms",
    )
    report.add("submit -> published p50 / p99 (submitted event on the topic)",
               f"{percentile(published, 50):.0f} / {percentile(published, 99):.0f} ms")  # fmt: skip
    report.add("submit -> routed p50 / p99 (decision event on the topic)",
               f"{percentile(routed, 50):.0f} / {percentile(routed, 99):.0f} ms")  # fmt: skip
    c50, c99 = percentile(counted, 50), percentile(counted, 99)
    report.add("submit -> counted p50 (analytics)", f"{c50:.0f} ms", target="< 100 ms", met=c50 < 100)
    report.add("submit -> counted p99 (analytics)", f"{c99:.0f} ms", target="< 500 ms", met=c99 < 500)
    # Every referral's decision is on the topic: routing's, or intake's own safeguarding escalation.
    decided_share = len(routed) / max(1, len(accepted))
    if decided_share < 1:
        report.notes.append(f"{decided_share:.1%} of sustained referrals' decisions were seen on the topic")
    growth = lag_growth(report.lag)
    worst = max((max(sample.values()) for _, sample in report.lag), default=0)
    report.add("consumer lag, worst sample (any group)", f"{worst:,} events")
    report.add("consumer lag growth (last third minus first third, mean)", f"{growth:+.1f} events",
               target="no growth", met=growth <= max(5.0, 0.02 * rate))  # fmt: skip
    report.add("accepted but not seen counted", f"{len(accepted) - len(counted)}", target="0",
               met=len(accepted) == len(counted))  # fmt: skip
    per_referral = {
        name: (cpu_after[name] - cpu_before[name]) * 1000 / max(1, len(accepted)) for name in cpu_after
    }
    report.add("CPU per referral, every process",
               f"{sum(per_referral.values()):.1f} ms",
               ", ".join(f"{name} {ms:.1f}" for name, ms in sorted(per_referral.items(), key=lambda i: -i[1])))  # fmt: skip


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def lag_growth(samples: list[tuple[float, dict[str, int]]]) -> float:
    if len(samples) < 3:
        return 0.0
    totals = [max(sample.values()) for _, sample in samples]
    third = len(totals) // 3
    return statistics.fmean(totals[-third:]) - statistics.fmean(totals[:third])


async def _nothing() -> None:
    return None


# -- output ------------------------------------------------------------------------------------


def table(report: Report) -> list[str]:
    lines = ["| figure | value | limit | ratio | target | met |", "| --- | --- | --- | --- | --- | --- |"]
    lines += [
        f"| {r.figure} | {r.value} | {r.limit} | {r.ratio} | {r.target} | {r.met} |" for r in report.rows
    ]
    return lines


def ramp_table(report: Report) -> list[str]:
    lines = ["| target | offered/s | accepted/s | p50 ms | p95 ms | p99 ms | not accepted |",
             "| --- | --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    for name, steps in report.ramps.items():
        for step in steps:
            lines.append(f"| {name} | {step.rate:,.0f} | {step.accepted_per_s:,.1f} | {step.latency_ms(50):.1f} | "
                         f"{step.latency_ms(95):.1f} | {step.latency_ms(99):.1f} | {sum(step.failures().values())} |")  # fmt: skip
    return lines


def lag_table(report: Report) -> list[str]:
    lines = ["| t (s) | " + " | ".join(SERVICE_NAMES) + " |", "| --- |" + " --- |" * len(SERVICE_NAMES)]
    every = max(1, len(report.lag) // 12)
    for at, sample in report.lag[::every]:
        lines.append(f"| {at:.0f} | " + " | ".join(str(sample[name]) for name in SERVICE_NAMES) + " |")
    return lines


def write_docs(report: Report, args: argparse.Namespace, command: str) -> None:
    cpus = os.cpu_count()
    lines = [
        "# Performance: the end-to-end benchmark",
        "",
        f"Written by `{command}` (do not edit by hand; run it again). Last run "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {platform.machine()}, {cpus} CPU(s), Python "
        f"{platform.python_version()}; {'quick mode' if args.quick else 'full mode'}: sustained "
        f"{args.rate:g} referrals/s for {args.duration:g} s. Load generator, services and both servers "
        "share this machine, so figures are ratios to the raw limits of the same servers measured in "
        "the same run, not absolute capacity. The embedded servers are Tansu (memory storage) and "
        "SecantusDB (pure Python, sync on commit); production runs Apache Kafka and MongoDB.",
        "",
        "## Figures and ratios",
        "",
        *table(report),
        "",
        "## Ramps (open loop, rates doubling until the target stops keeping up)",
        "",
        *ramp_table(report),
        "",
        "## Consumer lag during the sustained run (events behind, per consumer group)",
        "",
        *lag_table(report),
        "",
    ]
    if report.notes:
        lines += ["## Notes", "", *[f"- {note}" for note in report.notes], ""]
    DOCS.parent.mkdir(parents=True, exist_ok=True)
    DOCS.write_text("\n".join(lines))


def _say(message: str) -> None:
    print(message, flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="short phases (a few minutes in all)")
    parser.add_argument("--rate", type=float, default=100.0, help="sustained referrals/s (default 100)")
    parser.add_argument("--duration", type=float, help="sustained seconds (default 600; 30 with --quick)")
    parser.add_argument("--no-docs", action="store_true", help="print only; leave docs/performance.md alone")
    parser.add_argument(
        "--sustained-only",
        action="store_true",
        help="skip the raw limits and the ramps: only the sustained run (implies --no-docs)",
    )
    args = parser.parse_args()
    if args.duration is None:
        args.duration = 30.0 if args.quick else 600.0
    if args.rate <= 0 or args.duration <= 0:
        parser.error("--rate and --duration must be positive")
        return 2

    workdir = Path(tempfile.mkdtemp(prefix="signpost-bench-"))
    cluster = bench_cluster(workdir)
    bare_port = free_port()
    bare = ManagedProcess(
        "bare-fastapi",
        [sys.executable, "-m", "uvicorn", "bare_fastapi:app", "--app-dir", str(Path(__file__).parent),
         "--port", str(bare_port), "--log-level", "warning", "--no-access-log"],
        log_file=workdir / "bare-fastapi.log",
    )  # fmt: skip
    try:
        _say(f"starting the platform (logs in {cluster.logs})")
        try:
            cluster.start()
        except EmbeddedUnavailable as exc:
            print(f"bench/e2e.py: {exc}", file=sys.stderr)
            return 2
        bare.start()
        while not port_is_open("127.0.0.1", bare_port):
            time.sleep(0.1)
        report = run_fast(run(args, cluster, f"http://127.0.0.1:{bare_port}"))
    finally:
        bare.signal(signal.SIGTERM)
        stop_all([bare], timeout_s=5)
        cluster.stop()
    command = "uv run --extra embedded python bench/e2e.py" + (" --quick" if args.quick else "")
    if args.rate != 100.0 or (args.duration != (30.0 if args.quick else 600.0)):
        command += f" --rate {args.rate:g} --duration {args.duration:g}"
    print()
    print("\n".join(table(report)))
    print()
    print("\n".join(ramp_table(report)))
    for note in report.notes:
        print(f"note: {note}")
    if not (args.no_docs or args.sustained_only):
        write_docs(report, args, command)
        print(f"\nwritten to {DOCS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
