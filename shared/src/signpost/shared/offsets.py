"""Reading the streams' positions: watermarks, committed group offsets, lag, last record times.

Read-only, but for `carry_over_offsets` (which commits for a group no consumer is in):
nothing here joins a consumer group. Tansu breaks the connection on an OffsetFetch without
a partition list, so group offsets are always read for an explicit list of partitions.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeAlias

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import CommitFailedError
from aiokafka.structs import ConsumerRecord, OffsetAndMetadata, TopicPartition
from signpost.shared.errors import describe_error
from signpost.shared.logging import get_logger
from signpost.shared.settings import SERVICE_NAMES, Settings
from signpost.shared.topics import RETRYING_SERVICES, Topics

log = get_logger(__name__)

# How long a fetch of the last record may wait for data that is already there.
LAST_RECORD_WAIT_MS = 100


Record: TypeAlias = ConsumerRecord[bytes, bytes]


@dataclass(frozen=True)
class Watermarks:
    low: int  # the first offset still in the log
    high: int  # the offset the next record will get
    last_event_at: datetime | None = None  # the newest record's timestamp

    @property
    def retained(self) -> int:
        return self.high - self.low


@dataclass(frozen=True)
class PartitionLag:
    group: str
    topic: str
    partition: int
    low_watermark: int
    high_watermark: int
    committed: int | None  # None: the group has not committed on this partition yet

    @property
    def position(self) -> int:
        """Where the group reads next: its committed offset, or the earliest retained record when it
        has committed none (groups start there) or retention deleted past it."""
        return self.low_watermark if self.committed is None else max(self.committed, self.low_watermark)

    @property
    def lag(self) -> int:
        """What the group still has to read."""
        return max(0, self.high_watermark - self.position)


class StreamInspector:
    """An admin client and a group-less consumer, opened together and closed together."""

    def __init__(self, settings: Settings) -> None:
        bootstrap = settings.kafka_bootstrap  # Kafka alone: a benchmark or an ops tool may have no MongoDB
        if not bootstrap:
            raise ValueError("SIGNPOST_KAFKA_BOOTSTRAP must be set to read the streams' positions")
        self.topics = Topics.from_settings(settings)
        self._admin = AIOKafkaAdminClient(
            bootstrap_servers=bootstrap, request_timeout_ms=settings.kafka_request_timeout_ms
        )
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            enable_auto_commit=False,
            fetch_max_wait_ms=LAST_RECORD_WAIT_MS,
            request_timeout_ms=settings.kafka_request_timeout_ms,
        )

    async def start(self) -> None:
        await self._admin.start()
        try:
            await self._consumer.start()
        except BaseException:
            await self._admin.close()
            raise

    async def close(self) -> None:
        try:
            await self._consumer.stop()
        finally:
            await self._admin.close()

    async def partitions(self, topics: Iterable[str]) -> list[TopicPartition]:
        """Every partition of the given topics that exist (fresh metadata, whatever is assigned)."""
        described = await self._admin.describe_topics(list(topics))
        return sorted(
            TopicPartition(str(topic["topic"]), int(partition["partition"]))
            for topic in described
            if topic["error_code"] == 0
            for partition in topic["partitions"]
        )

    async def watermarks(self, partitions: Sequence[TopicPartition]) -> dict[TopicPartition, Watermarks]:
        """Each partition's watermarks and newest record time.

        Tansu answers ListOffsets(latest) with the last batch's base offset + 1, so a batch
        of several records hides all but its first: the newest records are read to find the
        real end (on Apache Kafka the answer is already exact and this changes nothing).
        """
        if not partitions:
            return {}
        low = await self._consumer.beginning_offsets(list(partitions))
        high = await self._consumer.end_offsets(list(partitions))
        last = await self._last_records({tp: high[tp] for tp in partitions if high[tp] > low[tp]})
        return {
            tp: Watermarks(
                low=low[tp],
                high=max(high[tp], last[tp].offset + 1) if tp in last else high[tp],
                last_event_at=datetime.fromtimestamp(last[tp].timestamp / 1000, UTC) if tp in last else None,
            )
            for tp in partitions
        }

    async def ends(self, partitions: Sequence[TopicPartition]) -> dict[TopicPartition, int]:
        """Each partition's end as the broker reports it: one ListOffsets, no record read. On Tansu
        it can be short of a multi-record batch's last records (`watermarks` finds the real end)."""
        if not partitions:
            return {}
        return dict(await self._consumer.end_offsets(list(partitions)))

    async def committed(self, group: str, partitions: Sequence[TopicPartition]) -> dict[TopicPartition, int]:
        """The group's committed offsets; partitions it never committed on are left out."""
        if not partitions:
            return {}
        found = await self._admin.list_consumer_group_offsets(group, partitions=list(partitions))
        return {tp: meta.offset for tp, meta in found.items() if meta.offset >= 0}

    async def groups(self) -> list[str]:
        """This deployment's consumer groups: every service's, and any other under the prefix."""
        listed = await self._admin.list_consumer_groups()
        known = {group for service in SERVICE_NAMES for group in lag_groups(self.topics, service)}
        prefix = self.topics.group("")
        return sorted(known | {str(entry[0]) for entry in listed if str(entry[0]).startswith(prefix)})

    async def lag(
        self,
        groups: Sequence[str],
        *,
        watermarks: dict[TopicPartition, Watermarks],
        always: Iterable[tuple[str, str]] = (),
    ) -> list[PartitionLag]:
        """Lag of each group on each topic it consumes: those in `always` (group, topic),
        and any topic the group has committed on."""
        expected = set(always)
        rows: list[PartitionLag] = []
        for group in groups:
            committed = await self.committed(group, list(watermarks))
            consumed = {tp.topic for tp in committed} | {topic for g, topic in expected if g == group}
            rows.extend(
                PartitionLag(
                    group=group,
                    topic=tp.topic,
                    partition=tp.partition,
                    low_watermark=marks.low,
                    high_watermark=marks.high,
                    committed=committed.get(tp),
                )
                for tp, marks in watermarks.items()
                if tp.topic in consumed
            )
        return rows

    async def _last_records(self, reported_high: dict[TopicPartition, int]) -> dict[TopicPartition, Record]:
        """The newest record of each given partition, read from its reported high watermark - 1."""
        if not reported_high:
            return {}
        wanted = list(reported_high)
        self._consumer.assign(wanted)
        for tp, high in reported_high.items():
            self._consumer.seek(tp, high - 1)
        last: dict[TopicPartition, Record] = {}
        # A compacted topic may lack offset high-1; a few short rounds, then what was found.
        for _ in range(3):
            batches = await self._consumer.getmany(*wanted, timeout_ms=LAST_RECORD_WAIT_MS * 3)
            for tp, records in batches.items():
                if records:
                    last[tp] = records[-1]
            if len(last) == len(wanted):
                break
        return last


@asynccontextmanager
async def stream_inspector(settings: Settings) -> AsyncIterator[StreamInspector]:
    inspector = StreamInspector(settings)
    await inspector.start()
    try:
        yield inspector
    finally:
        await inspector.close()


async def all_watermarks(inspector: StreamInspector) -> dict[TopicPartition, Watermarks]:
    """Watermarks of every partition of every topic this deployment creates."""
    return await inspector.watermarks(
        await inspector.partitions(spec.name for spec in inspector.topics.specs())
    )


async def group_has_no_offsets(settings: Settings, *, group: str) -> bool:
    """True when `group` has committed no offset on any partition of the referrals topic.

    Every consuming service commits there as it works, so a service that has worked before and
    finds nothing was handed a broker that forgot its log (the embedded one, restarted; or
    Apache Kafka after the group's offsets expired). A service that never committed reads the
    same, which costs only a replay its consumers skip."""
    async with stream_inspector(settings) as inspector:
        topic = inspector.topics.referrals
        partitions = [TopicPartition(topic, p) for p in range(inspector.topics.partitions)]
        return not await inspector.committed(group, partitions)


def lag_groups(topics: Topics, service: str) -> list[str]:
    """The consumer groups a service's lag is read for: those of `lag_pairs`, main group first."""
    return list(dict.fromkeys(group for group, _ in lag_pairs(topics, service)))


def lag_pairs(topics: Topics, service: str) -> list[tuple[str, str]]:
    """The (group, topic) pairs a service's lag always covers, committed on yet or not: its main
    group on the referrals topic (analytics' also on the catalogue and the settings register, which
    its projections fold: `source_topics`), and its retry group on its retry topic where it has one
    (`RETRYING_SERVICES`). `StreamInspector.lag` adds any other topic one
    of `lag_groups` has committed on.

    The one definition of what a service's lag means: its `/metrics` (`service_lag`), the ops view
    (analytics' sampler) and the benchmarks (`benchkit.GroupLag`) all read it."""
    main = topics.group(service)
    read = (
        [topics.referrals, topics.provisions, topics.settings_register]
        if service == "analytics"
        else [topics.referrals]
    )
    retried = [(topics.retry_group(service), topics.retry(service))] if service in RETRYING_SERVICES else []
    return [*((main, topic) for topic in read), *retried]


async def service_lag(inspector: StreamInspector, service: str) -> list[PartitionLag]:
    """One service's lag: each of its groups (main and retry) on every topic it reads (`lag_pairs`)."""
    topics = inspector.topics
    return await inspector.lag(
        lag_groups(topics, service),
        watermarks=await all_watermarks(inspector),
        always=lag_pairs(topics, service),
    )


async def carry_over_offsets(settings: Settings, service: str) -> dict[str, int]:
    """Give each of `service`'s groups in this area the committed offsets of its former name,
    when it has none of its own yet: the upgrade to groups named with the tenant then neither
    replays the stream from its start nor skips what arrived meanwhile.

    A group that has committed anything is left alone (so this runs at every start, and in
    `signpost migrate`, at no cost but two OffsetFetches per group). Returns the groups given
    offsets, with how many partitions each.

    Replicas starting together may each find the group without offsets; one's consumer may then
    join and commit before another copies. So the group is read again just before the copy is
    committed (`_carry_over`), and a commit the broker refuses because the group has members by
    then (Apache Kafka: CommitFailedError) leaves the group as its members made it."""
    copied: dict[str, int] = {}
    async with stream_inspector(settings) as inspector:
        partitions = await inspector.partitions(spec.name for spec in inspector.topics.specs())
        for group, former in inspector.topics.former_groups(service).items():
            if await inspector.committed(group, partitions):
                continue
            offsets = await inspector.committed(former, partitions)
            if offsets and await _carry_over(
                settings, inspector, group=group, offsets=offsets, partitions=partitions
            ):
                copied[group] = len(offsets)
                log.info(
                    "consumer group offsets carried over", group=group, former=former, partitions=len(offsets)
                )
    return copied


async def _carry_over(
    settings: Settings,
    inspector: StreamInspector,
    *,
    group: str,
    offsets: dict[TopicPartition, int],
    partitions: list[TopicPartition],
) -> bool:
    """Commit `offsets` for `group` unless it has committed offsets of its own by now; True when
    committed. The consumer is started first, so the re-check is the last request before the commit.

    What remains: a member committing between that re-check and this commit (one round trip). Apache
    Kafka refuses this commit then (the group has members; caught below); Tansu may take it, setting
    the group to the former group's offsets, which is where that member started anyway unless it
    had already read on from them: those events would be read again and skipped by event id."""
    try:
        async with _committer(settings, group=group, partitions=list(offsets)) as consumer:
            if own := await inspector.committed(group, partitions):
                log.info(
                    "consumer group committed offsets of its own meanwhile; none carried over",
                    group=group,
                    partitions=len(own),
                )
                return False
            await consumer.commit({tp: OffsetAndMetadata(offset, "") for tp, offset in offsets.items()})
            return True
    except CommitFailedError as exc:  # a member joined meanwhile: its offsets are the group's
        log.info(
            "consumer group has members by now; its offsets not carried over",
            group=group,
            error=describe_error(exc),
        )
        return False


async def commit_offsets(settings: Settings, *, group: str, offsets: dict[TopicPartition, int]) -> None:
    """Commit `offsets` for `group` without joining it: a consumer with the partitions assigned
    by hand commits as no member of any generation, which a group with no members accepts."""
    async with _committer(settings, group=group, partitions=list(offsets)) as consumer:
        await consumer.commit({tp: OffsetAndMetadata(offset, "") for tp, offset in offsets.items()})


@asynccontextmanager
async def _committer(
    settings: Settings, *, group: str, partitions: list[TopicPartition]
) -> AsyncIterator[AIOKafkaConsumer]:
    """A started consumer of `group` with `partitions` assigned by hand: it commits as no member of
    any generation, which a group with no members accepts."""
    bootstrap = settings.kafka_bootstrap
    if not bootstrap:
        raise ValueError("SIGNPOST_KAFKA_BOOTSTRAP must be set to commit a group's offsets")
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        request_timeout_ms=settings.kafka_request_timeout_ms,
    )
    await consumer.start()
    try:
        consumer.assign(partitions)
        yield consumer
    finally:
        await consumer.stop()
