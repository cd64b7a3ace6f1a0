"""What the platform benchmarks share (bench/e2e.py, bench/roundtrips.py): the platform started for
load, the callers' tokens, each consumer group's lag, whether the pipeline has caught up, and when
each referral was decided and counted."""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from pymongo import AsyncMongoClient
from signpost.shared.auth.principal import Role
from signpost.shared.errors import describe_error
from signpost.shared.events import (
    ReferralEscalatedV1,
    ReferralRoutedV1,
    ReferralSubmittedV1,
    ReferralUnmatchedV1,
)
from signpost.shared.logging import get_logger
from signpost.shared.offsets import PartitionLag, StreamInspector, Watermarks, lag_groups, lag_pairs
from signpost.shared.outbox import pending_count
from signpost.shared.settings import SERVICE_NAMES, Settings
from signpost.shared.topics import Topics

from signpost.platform.cluster import LocalCluster
from signpost.platform.embedded import EmbeddedServer, start_kafka, start_mongodb
from signpost.platform.processes import stop_all

T = TypeVar("T")
log = get_logger(__name__)

# Load from many callers must not meet the per-caller write limit.
BENCH_SETTINGS = {"rate_limit_writes_per_minute": "100000", "topic_partitions": "6"}
CALLERS = 20
SUBMITTED_TYPE = ReferralSubmittedV1.event_type.encode()
DECISION_TYPES = {t.event_type.encode() for t in (ReferralRoutedV1, ReferralUnmatchedV1, ReferralEscalatedV1)}


def run_fast(main: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run` on uvloop, as the services run: the load generator and the observers share this
    one process, which must not become the bottleneck it measures."""
    try:
        import uvloop
    except ImportError:  # no uvloop on Windows
        return asyncio.run(main)
    return uvloop.run(main)


@contextmanager
def scratch_mongodb() -> Iterator[EmbeddedServer]:
    """A SecantusDB of its own on a free port, its data and log in a temporary directory, stopped
    and removed afterwards: for the benchmarks that measure the database alone."""
    with tempfile.TemporaryDirectory(prefix="signpost-bench-") as scratch:
        server = start_mongodb(data_dir=Path(scratch) / "mongodb", log_file=Path(scratch) / "secantus.log")
        try:
            yield server
        finally:
            stop_all([server.process], timeout_s=10)


@contextmanager
def scratch_kafka() -> Iterator[EmbeddedServer]:
    """A Tansu of its own on a free port (memory storage: it starts empty), stopped afterwards: for
    the benchmarks that measure the broker alone. Its own lines go to stderr, out of the tables."""
    server = start_kafka(sink=sys.stderr)
    try:
        yield server
    finally:
        stop_all([server.process], timeout_s=10)


def bench_cluster(workdir: Path, *, settings: Mapping[str, str] | None = None) -> LocalCluster:
    return LocalCluster(workdir, settings={**BENCH_SETTINGS, **(settings or {})})


def practitioner_tokens(cluster: LocalCluster, count: int = CALLERS) -> list[str]:
    """One practitioner per school, so requests come from many callers as they would."""
    return [cluster.token(Role.PRACTITIONER, f"school-{n}") for n in range(count)]


def cluster_topics(cluster: LocalCluster) -> Topics:
    return Topics(
        prefix="", partitions=int(cluster.setting("topic_partitions")), tenant=cluster.setting("tenant")
    )


@dataclass(frozen=True)
class StreamState:
    """One reading of the streams: each partition's end, and each consumer group's position and
    lag on each partition of every topic it reads."""

    ends: dict[TopicPartition, int]
    rows: list[PartitionLag]
    services: dict[str, str]  # group -> the service it belongs to

    @property
    def produced(self) -> int:
        """Records ever appended to the deployment's topics (the sum of their partitions' ends)."""
        return sum(self.ends.values())

    def consumed(self) -> dict[str, int]:
        """Records each service's consumer groups have read and committed, on every topic."""
        read: dict[str, int] = dict.fromkeys(SERVICE_NAMES, 0)
        for row in self.rows:
            read[self.services[row.group]] += row.position
        return read

    def lag(self) -> dict[str, int]:
        """Each service's lag: the sum over its consumer groups (main and retry) and every partition
        of every topic they read."""
        lag: dict[str, int] = dict.fromkeys(SERVICE_NAMES, 0)
        for row in self.rows:
            lag[self.services[row.group]] += row.lag
        return lag


@dataclass
class ReadCost:
    """How many lag readings of one kind were taken, and the time they took in all."""

    count: int = 0
    seconds: float = 0.0

    def add(self, seconds: float) -> None:
        self.count += 1
        self.seconds += seconds


def light_watermarks(
    ends: Mapping[TopicPartition, int], last_full: Mapping[TopicPartition, Watermarks]
) -> dict[TopicPartition, Watermarks]:
    """Watermarks from the reported ends alone: each low is the last full reading's (0 for a
    partition not read in full yet; the benchmarks' topics keep every record for their run), and
    no end is taken below the real end that reading found, which Tansu's report can be short of."""
    watermarks: dict[TopicPartition, Watermarks] = {}
    for tp, end in ends.items():
        full = last_full.get(tp)
        watermarks[tp] = Watermarks(low=full.low, high=max(end, full.high)) if full else Watermarks(0, end)
    return watermarks


class GroupLag:
    """How far each service's consumers are behind, on every topic they read: the (group, topic)
    pairs of `offsets.lag_pairs` (main group on the referrals topic, analytics' on the catalogue and
    the register too, retry group on its retry topic) and any other topic those groups have
    committed on. Per service, summed over its groups, topics and partitions.

    Read through StreamInspector, which finds a partition's real end: Tansu reports it one
    short of a multi-record batch's last records, and a group would then look caught up early.
    That full reading fetches each partition's newest record, so while load runs (on a broker that
    is itself measured) `read_light` reads the reported ends and the committed offsets alone.
    """

    def __init__(self, bootstrap: str, topics: Topics) -> None:
        self._topics = topics
        self._inspector = StreamInspector(
            Settings(
                kafka_bootstrap=bootstrap,
                topic_prefix=topics.prefix,
                topic_partitions=topics.partitions,
                tenant=topics.tenant,
            )
        )
        # What each service's lag covers, as its /metrics and the ops view read it (offsets.lag_pairs).
        self._services: dict[str, str] = {
            group: service for service in SERVICE_NAMES for group in lag_groups(topics, service)
        }
        self._always = [pair for service in SERVICE_NAMES for pair in lag_pairs(topics, service)]
        self._partitions: list[TopicPartition] = []
        self._last_full: dict[TopicPartition, Watermarks] = {}
        self.costs: dict[str, ReadCost] = {}
        self.reset_costs()

    def reset_costs(self) -> None:
        self.costs = {"light": ReadCost(), "full": ReadCost()}

    async def start(self) -> None:
        await self._inspector.start()

    async def _every_partition(self) -> list[TopicPartition]:
        """Every partition of the deployment's topics; looked up until every topic exists."""
        names = [spec.name for spec in self._topics.specs()]
        if {tp.topic for tp in self._partitions} != set(names):
            self._partitions = await self._inspector.partitions(names)
        return self._partitions

    async def read(self) -> StreamState:
        """The full reading: both watermarks and each partition's newest record (its real end on
        Tansu), then every group's committed offsets. For step edges and the final word on lag."""
        started = time.monotonic()
        watermarks = await self._inspector.watermarks(await self._every_partition())
        self._last_full = watermarks
        state = await self._state(watermarks)
        self.costs["full"].add(time.monotonic() - started)
        return state

    async def read_light(self) -> StreamState:
        """The reading taken while load runs: the partitions' ends (one ListOffsets, no record
        fetched) and every group's committed offsets, the lows kept from the last full reading
        (`light_watermarks`). On Tansu an end can be short of a multi-record batch's last records,
        so this may count a little less lag than `read`, never more."""
        started = time.monotonic()
        partitions = await self._every_partition()
        watermarks = light_watermarks(await self._inspector.ends(partitions), self._last_full)
        state = await self._state(watermarks)
        self.costs["light"].add(time.monotonic() - started)
        return state

    async def _state(self, watermarks: dict[TopicPartition, Watermarks]) -> StreamState:
        rows = await self._inspector.lag(list(self._services), watermarks=watermarks, always=self._always)
        return StreamState(
            ends={tp: marks.high for tp, marks in watermarks.items()}, rows=rows, services=self._services
        )

    async def lag(self) -> dict[str, int]:
        return (await self.read()).lag()

    async def light_lag(self) -> dict[str, int]:
        return (await self.read_light()).lag()

    async def none_behind(self) -> bool:
        """No group behind on any partition: a light reading first, and only if it finds no lag the
        full one (the real ends), so polling a platform that is still draining stays cheap."""
        if any((await self.light_lag()).values()):
            return False
        return not any((await self.lag()).values())

    def cost_note(self, kind: str, *, over: str) -> str:
        """What the `kind` readings cost, and what each one asks of the broker, for the report."""
        cost = self.costs[kind]
        mean_ms = cost.seconds * 1000 / cost.count if cost.count else 0.0
        groups, partitions = len(self._services), len(self._partitions)
        asks = (
            f"one ListOffsets (latest) for the {partitions} partitions and one OffsetFetch per consumer "
            f"group ({groups}), no record fetched"
            if kind == "light"
            else f"two ListOffsets for the {partitions} partitions, a fetch of each non-empty one's newest "
            f"record and one OffsetFetch per consumer group ({groups})"
        )
        return (
            f"{over}: {cost.count} {kind} lag reading(s) of {mean_ms:.0f} ms each on average "
            f"({cost.seconds:.1f} s in all), each {asks}"
        )

    async def stop(self) -> None:
        await self._inspector.close()


LagSample = tuple[float, dict[str, int]]  # seconds since sampling began, lag per service
LagReader = Callable[[], Awaitable[dict[str, int]]]
MIN_GROWTH_SAMPLES = 3


async def sample_while(
    work: Awaitable[T], read: LagReader, *, every_s: float, errors: list[str] | None = None
) -> tuple[T, list[LagSample]]:
    """Run `work`, reading lag every `every_s` while it runs and once as it ends, and no more:
    samples taken while the platform drains afterwards would all be low, and would hide growth.

    A reading that fails is logged, counted in `errors` (its repr) and skipped: sampling goes on at
    the next interval, so one failed read costs one sample, not every sample after it."""
    samples: list[LagSample] = []
    started = time.monotonic()

    async def sample_once() -> None:
        try:
            lag = await read()
        except Exception as exc:
            log.warning("lag sample failed; sampling goes on", error=describe_error(exc))
            if errors is not None:
                errors.append(repr(exc))
        else:
            samples.append((time.monotonic() - started, lag))

    async def sample() -> None:
        while True:
            await sample_once()
            await asyncio.sleep(every_s)

    sampler = asyncio.create_task(sample())
    try:
        result = await work
    finally:
        sampler.cancel()
        await asyncio.gather(sampler, return_exceptions=True)
    await sample_once()
    return result, samples


def lag_growth(samples: list[LagSample]) -> float | None:
    """Mean of the worst service's lag over the last third of the samples minus that over the first
    third; None (not measured) for fewer than three samples."""
    if len(samples) < MIN_GROWTH_SAMPLES:
        return None
    worst = [max(sample.values(), default=0) for _, sample in samples]
    third = len(worst) // 3
    return statistics.fmean(worst[-third:]) - statistics.fmean(worst[:third])


async def caught_up(mongo: AsyncMongoClient[dict[str, Any]], cluster: LocalCluster, lag: GroupLag) -> bool:
    """Every referral decided, both outboxes empty, and no consumer group behind."""
    intake_db = mongo[cluster.database_name("intake")]
    routing_db = mongo[cluster.database_name("routing")]
    # By tenant and status, as intake's own index has them: a status-only count scans every referral.
    undecided = await intake_db["referrals"].count_documents(
        {"tenant": cluster.setting("tenant"), "status": "submitted"}
    )
    pending = await pending_count(intake_db) + await pending_count(routing_db)
    return undecided == 0 and pending == 0 and await lag.none_behind()


async def wait_caught_up(
    mongo: AsyncMongoClient[dict[str, Any]], cluster: LocalCluster, lag: GroupLag, *, timeout_s: float
) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await caught_up(mongo, cluster, lag):
            return True
        await asyncio.sleep(0.5)
    return False


class PipelineObserver:
    """When each referral's submitted event reached the topic (submit -> published: intake and its
    outbox relay), when its decision did (submit -> routed), both by the records' own timestamps,
    and when analytics' group committed its offset past the submitted event (submit -> counted:
    analytics commits a batch's offsets right after the transaction that folded it; read every
    `every_s`, so late by at most that). Reads Kafka only, so watching puts no load on the database
    being measured.

    While the load runs it only reads analytics' committed offsets (OffsetFetch, one stored
    document per partition on Tansu); the topic itself is read once, at `stop`. A consumer at the
    tail would be one more reader of the log it measures, and on Tansu every read that finds new
    data lists each batch stored in the partition (bench/broker_growth.py)."""

    def __init__(self, bootstrap: str, topics: Topics, *, every_s: float = 0.02) -> None:
        self._topics = topics
        self._every_s = every_s
        self._consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        self._admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        self._partitions = [TopicPartition(topics.referrals, p) for p in range(topics.partitions)]
        self._commits: list[tuple[float, dict[TopicPartition, int]]] = []  # each change, when seen
        self.published_at: dict[str, float] = {}
        self.decided_at: dict[str, float] = {}
        self.counted_at: dict[str, float] = {}
        self._watch: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._consumer.start()
        await self._admin.start()
        self._consumer.assign(self._partitions)
        await self._consumer.seek_to_end(*self._partitions)
        for partition in self._partitions:
            await self._consumer.position(partition)  # resolved now, before the load's first record
        self._consumer.pause(*self._partitions)  # no fetches until `stop` reads the topic
        self._watch = asyncio.create_task(self._watch_commits())

    async def _watch_commits(self) -> None:
        group = self._topics.group("analytics")
        while True:
            found = await self._admin.list_consumer_group_offsets(group, partitions=self._partitions)
            committed = {partition: meta.offset for partition, meta in found.items()}
            if not self._commits or committed != self._commits[-1][1]:
                self._commits.append((time.time(), committed))
            await asyncio.sleep(self._every_s)

    async def stop(self) -> None:
        """Stop watching, then read what the run put on the topic and work out the three times."""
        if self._watch:
            self._watch.cancel()
        try:
            submitted = await self._read_topic()
        finally:
            await self._consumer.stop()
            await self._admin.close()
        for partition, waiting in submitted.items():  # in offset order
            next_up = 0
            for seen_at, committed in self._commits:
                done = committed.get(partition, -1)
                while next_up < len(waiting) and waiting[next_up][0] < done:
                    self.counted_at.setdefault(waiting[next_up][1], seen_at)
                    next_up += 1

    async def _read_topic(self) -> dict[TopicPartition, list[tuple[int, str]]]:
        """Every submitted event's offset and referral, by partition; published and decided times."""
        submitted: dict[TopicPartition, list[tuple[int, str]]] = {tp: [] for tp in self._partitions}
        self._consumer.resume(*self._partitions)
        # The platform is drained: the log has stopped growing, so a quiet second means the end.
        while batches := await self._consumer.getmany(timeout_ms=1000, max_records=10_000):
            for partition, records in batches.items():
                for record in records:
                    if not record.key:
                        continue
                    kind = dict(record.headers).get("ce_type")
                    referral = record.key.decode()
                    sent_at = record.timestamp / 1000  # the producer's clock when it sent the record
                    if kind == SUBMITTED_TYPE:
                        submitted[partition].append((record.offset, referral))
                        self.published_at.setdefault(referral, sent_at)
                    elif kind in DECISION_TYPES:
                        self.decided_at.setdefault(referral, sent_at)
        return submitted


def group_cpu_seconds(pgid: int) -> float:
    """CPU seconds (user + system) used so far by every live process in a process group: each
    ManagedProcess leads its own group, so this is one service or server with anything it spawned."""
    ticks = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue  # the process ended meanwhile
        if int(fields[2]) == pgid:  # fields after the name: state, ppid, pgrp, ... utime at 11, stime at 12
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def cluster_cpu_seconds(cluster: LocalCluster) -> dict[str, float]:
    """CPU seconds so far of each service and embedded server of the cluster."""
    processes: dict[str, int] = {name: process.pid for name, process in cluster.services.items()}
    for label, server in (("tansu", cluster.kafka), ("secantusdb", cluster.mongodb)):
        if server is not None:
            processes[label] = server.process.pid
    return {label: group_cpu_seconds(pid) for label, pid in processes.items()}
