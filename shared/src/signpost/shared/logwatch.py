"""Noticing, while a service runs, that the broker lost its log (the embedded Tansu restarted with
memory storage): every topic, offset and group gone at once.

At start-up a service finds that out from its consumer group's missing offsets and replays its
outbox before publishing anything (`service.py`). A service that stays up through the broker's
restart needs the same without restarting: its producer and consumers reconnect by themselves
(aiokafka), and a client's first metadata request re-creates a lost topic with the broker's
default partition count, but nothing would send again what the consumers had not read yet.
This watch reads, every `SIGNPOST_LOG_WATCH_INTERVAL_S`, what a broker that keeps its log never
shows:

- the broker's cluster id changed: the embedded Tansu is started with a new one each time
  (`signpost.platform.embedded`), so its restart reads as a loss however the new log looks by
  then; an Apache Kafka cluster keeps its id with its log;
- the referrals topic is gone (its metadata is read without allowing the broker to create it, so
  the watch never re-creates it itself), or its partitions are not those seen before (re-created
  with another count by another client's metadata request: a topic that cannot be described for
  another reason is only not read this round);
- a partition's end offset went down (a new log counts from 0 again);
- the service's consumer group had committed offsets and has none.

Then it creates the topics as start-up does (`ensure_topics`, before anything else of the watch
reads the topic: the referrals topic with its `SIGNPOST_TOPIC_PARTITIONS`, the retry and dead-letter
topics with their settings) and has the outbox relay send again every event it keeps, in staging order,
before it publishes anything new; consumers skip what they had by event id. A paused or
unreachable broker changes none of these (the reads fail and are tried again), so an outage
alone never starts a replay. Partitions added to the topic by hand (the platform never does)
would read as a loss too, and cost a replay that consumers skip.

Each round costs a Metadata, a ListOffsets and an OffsetFetch request from every replica of intake
and routing (on the embedded Tansu a ListOffsets reads every stored batch, so it grows with the
log): hence the interval's default of 20 s, not a few seconds.

What remains: aiokafka 0.14's own clients (the services' producers and subscribers, and this
watch's consumer when its metadata refreshes) ask for their topics with creation allowed and have
no setting against it, so one of them may re-create a lost topic with the broker's default count
before this watch reads it. The watch then sees the partitions change and replays, but the topic
keeps the wrong count (Tansu cannot add partitions): it says so in an error.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import UnknownTopicOrPartitionError
from aiokafka.protocol.metadata import MetadataRequest
from aiokafka.structs import TopicPartition
from signpost.shared.errors import describe_error
from signpost.shared.kafka import ensure_topics
from signpost.shared.logging import get_logger
from signpost.shared.settings import Settings
from signpost.shared.topics import Topics

log = get_logger(__name__)

RECOVERY_RETRY_S = 2.0  # a recovery that failed (the broker away again) is tried again this soon
# The watch's consumer refreshes metadata on its own this seldom: such a refresh asks for the topic
# with creation allowed (aiokafka has no setting against it), and a failed round replaces the consumer.
WATCH_METADATA_MAX_AGE_MS = 24 * 3600 * 1000


@dataclass(frozen=True)
class LogState:
    """What the watch reads of the referrals topic each round."""

    ends: dict[int, int]  # partition -> end offset
    committed: bool  # the service's group has an offset on at least one partition
    missing: bool = False  # the broker does not know the topic (services create it at start-up)
    cluster: str | None = None  # the broker's cluster id, if it gives one


def log_lost(before: LogState | None, now: LogState, *, had_offsets: bool) -> str | None:
    """Why `now` shows a broker that lost the log `before` was read from; None when nothing says so.
    `had_offsets`: the group had committed offsets in some earlier round."""
    if now.missing:  # the service created it before the watch started, so it was there
        return "the referrals topic is gone"
    if before is None:
        return None
    if now.cluster != before.cluster:
        return f"the broker's cluster id went from {before.cluster!r} to {now.cluster!r}"
    if now.ends.keys() != before.ends.keys():
        return f"the referrals topic's partitions went from {sorted(before.ends)} to {sorted(now.ends)}"
    behind = sorted(p for p, end in now.ends.items() if end < before.ends[p])
    if behind:
        return f"end offsets went down on partition(s) {behind}"
    if had_offsets and not now.committed:
        return "the consumer group's committed offsets are gone"
    return None


class LogLossWatch:
    """Reads the referrals topic's state every `log_watch_interval_s` and calls `on_loss` when the
    broker has lost its log (after re-creating the topics)."""

    def __init__(
        self,
        settings: Settings,
        *,
        group: str,
        on_loss: Callable[[], Awaitable[None]],
    ) -> None:
        self._settings = settings
        self._topics = Topics.from_settings(settings)
        self._topic = self._topics.referrals
        self._group = group
        self._on_loss = on_loss
        self._interval_s = settings.log_watch_interval_s
        self._admin: AIOKafkaAdminClient | None = None
        self._consumer: AIOKafkaConsumer | None = None

    async def run(self) -> None:
        before: LogState | None = None
        had_offsets = False
        try:
            while True:
                await asyncio.sleep(self._interval_s)
                try:
                    now, reason = await self.round(before, had_offsets=had_offsets)
                except Exception as exc:  # the broker away or restarting: the next round reads again
                    log.debug("broker state not read; trying again", error=describe_error(exc))
                    await self.close()
                    continue
                if reason is not None:
                    before, had_offsets = None, False  # read afresh from the new log
                    continue
                before, had_offsets = now, had_offsets or now.committed
        finally:
            await self.close()

    async def round(self, before: LogState | None, *, had_offsets: bool) -> tuple[LogState, str | None]:
        """One reading, and why it shows a lost log (None: it does not); recovers when it does."""
        now = await self.read()
        reason = log_lost(before, now, had_offsets=had_offsets)
        if reason is not None:
            await self.recover(reason)
        return now, reason

    async def recover(self, reason: str) -> None:
        """Topics as start-up creates them (first: nothing of the watch reads the topic before),
        then the replay; tried until both are done."""
        log.warning("the broker has lost its log; topics created and the outbox sent again", why=reason)
        await self.close()  # its consumer's metadata names the lost topic
        while True:
            try:
                await ensure_topics(self._settings)
                await self._check_partitions()
                await self._on_loss()
                return
            except Exception as exc:
                log.warning("recovery from the lost log not done yet; retrying", error=describe_error(exc))
                await asyncio.sleep(RECOVERY_RETRY_S)

    async def _check_partitions(self) -> None:
        """Say so when another client re-created the topic first, with the broker's default count."""
        admin, _ = await self._clients()
        found = (await describe_without_creating(admin, self._topic)).partitions
        if found is not None and len(found) != self._topics.partitions:
            log.error(
                "the referrals topic was re-created by another client with the broker's default "
                "partition count, not SIGNPOST_TOPIC_PARTITIONS; it cannot be changed in place",
                partitions=len(found),
                expected=self._topics.partitions,
            )

    async def read(self) -> LogState:
        admin, consumer = await self._clients()
        described = await describe_without_creating(admin, self._topic)
        if described.partitions is None:
            return LogState(ends={}, committed=False, missing=True, cluster=described.cluster)
        partitions = [TopicPartition(self._topic, partition) for partition in described.partitions]
        ends = await consumer.end_offsets(partitions) if partitions else {}
        committed = (
            await admin.list_consumer_group_offsets(self._group, partitions=partitions) if partitions else {}
        )
        return LogState(
            ends={tp.partition: offset for tp, offset in ends.items()},
            committed=any(meta.offset >= 0 for meta in committed.values()),
            cluster=described.cluster,
        )

    async def _clients(self) -> tuple[AIOKafkaAdminClient, AIOKafkaConsumer]:
        if self._admin is None or self._consumer is None:
            bootstrap, _ = self._settings.require_servers()
            timeout = self._settings.kafka_request_timeout_ms
            admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=timeout)
            consumer = AIOKafkaConsumer(
                bootstrap_servers=bootstrap,
                enable_auto_commit=False,
                request_timeout_ms=timeout,
                metadata_max_age_ms=WATCH_METADATA_MAX_AGE_MS,
            )
            self._admin, self._consumer = admin, consumer  # closed by _close() even if a start fails
            await admin.start()
            await consumer.start()
        return self._admin, self._consumer

    async def close(self) -> None:
        admin, consumer, self._admin, self._consumer = self._admin, self._consumer, None, None
        if consumer is not None:
            with suppress(Exception):
                await consumer.stop()
        if admin is not None:
            with suppress(Exception):
                await admin.close()


@dataclass(frozen=True)
class Described:
    """One topic as a metadata request read it."""

    cluster: str | None  # the broker's cluster id (metadata version 2 on)
    partitions: list[int] | None  # None: the broker does not know the topic


async def describe_without_creating(admin: AIOKafkaAdminClient, topic: str) -> Described:
    """The topic's partitions and the broker's cluster id. Unlike the admin client's
    `describe_topics` (a MetadataRequest with auto-creation allowed, aiokafka's default), this never
    has the broker create a lost topic with its default partition count. Any other topic-level
    error (a topic being created, a leader being elected) raises: not read this round."""
    request = MetadataRequest([topic], allow_auto_topic_creation=False)
    response = (await admin._send_request(request)).to_object()  # the admin client offers no such call
    cluster = response.get("cluster_id")
    for described in response["topics"]:
        if described["topic"] != topic:
            continue
        if described["error_code"] == UnknownTopicOrPartitionError.errno:
            break
        if described["error_code"] != 0:
            raise RuntimeError(f"the referrals topic not described: error {described['error_code']}")
        return Described(
            cluster, sorted(int(partition["partition"]) for partition in described["partitions"])
        )
    return Described(cluster, None)
