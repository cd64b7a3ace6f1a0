"""Noticing, while a service runs, that the broker lost its log (the embedded Tansu restarted with
memory storage): every topic, offset and group gone at once.

At start-up a service finds that out from its consumer group's missing offsets and replays its
outbox before publishing anything (`service.py`). A service that stays up through the broker's
restart needs the same without restarting: its producer and consumers reconnect by themselves
(aiokafka), and a client's first metadata request re-creates a lost topic with the broker's
default partition count, but nothing would send again what the consumers had not read yet.
This watch reads, every few seconds, what a broker that keeps its log never shows:

- the referrals topic's partitions are not those seen before (re-created with another count by
  a client's metadata request: a topic that cannot be described is only not read this round);
- a partition's end offset went down (a new log counts from 0 again);
- the service's consumer group had committed offsets and has none.

Then it creates the topics as start-up does (`ensure_topics`: the retry and dead-letter topics
with their settings) and has the outbox relay send again every event it keeps, in staging order,
before it publishes anything new; consumers skip what they had by event id. A paused or
unreachable broker changes none of these (the reads fail and are tried again), so an outage
alone never starts a replay. Partitions added to the topic by hand (the platform never does)
would read as a loss too, and cost a replay that consumers skip.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import TopicPartition
from signpost.shared.kafka import ensure_topics
from signpost.shared.logging import get_logger
from signpost.shared.settings import Settings
from signpost.shared.topics import Topics

log = get_logger(__name__)

WATCH_INTERVAL_S = 2.0


@dataclass(frozen=True)
class LogState:
    """What the watch reads of the referrals topic each round."""

    ends: dict[int, int]  # partition -> end offset
    committed: bool  # the service's group has an offset on at least one partition


def log_lost(before: LogState | None, now: LogState, *, had_offsets: bool) -> str | None:
    """Why `now` shows a broker that lost the log `before` was read from; None when nothing says so.
    `had_offsets`: the group had committed offsets in some earlier round."""
    if before is None:
        return None
    if now.ends.keys() != before.ends.keys():
        return f"the referrals topic's partitions went from {sorted(before.ends)} to {sorted(now.ends)}"
    behind = sorted(p for p, end in now.ends.items() if end < before.ends[p])
    if behind:
        return f"end offsets went down on partition(s) {behind}"
    if had_offsets and not now.committed:
        return "the consumer group's committed offsets are gone"
    return None


class LogLossWatch:
    """Reads the referrals topic's state every `interval_s` and calls `on_loss` when the broker has
    lost its log (after re-creating the topics)."""

    def __init__(
        self,
        settings: Settings,
        *,
        group: str,
        on_loss: Callable[[], Awaitable[None]],
        interval_s: float = WATCH_INTERVAL_S,
    ) -> None:
        self._settings = settings
        self._topic = Topics.from_settings(settings).referrals
        self._group = group
        self._on_loss = on_loss
        self._interval_s = interval_s
        self._admin: AIOKafkaAdminClient | None = None
        self._consumer: AIOKafkaConsumer | None = None

    async def run(self) -> None:
        before: LogState | None = None
        had_offsets = False
        try:
            while True:
                await asyncio.sleep(self._interval_s)
                try:
                    now = await self._read()
                except Exception as exc:  # the broker away or restarting: the next round reads again
                    log.debug("broker state not read; trying again", error=repr(exc))
                    await self._close()
                    continue
                reason = log_lost(before, now, had_offsets=had_offsets)
                if reason is not None:
                    log.warning(
                        "the broker has lost its log; topics created and the outbox sent again", why=reason
                    )
                    await self._recover()
                    before, had_offsets = None, False  # read afresh from the new log
                    continue
                before, had_offsets = now, had_offsets or now.committed
        finally:
            await self._close()

    async def _recover(self) -> None:
        """Topics as start-up creates them, then the replay; tried until both are done."""
        while True:
            try:
                await ensure_topics(self._settings)
                await self._on_loss()
                return
            except Exception as exc:
                log.warning("recovery from the lost log not done yet; retrying", error=repr(exc))
                await asyncio.sleep(self._interval_s)

    async def _read(self) -> LogState:
        admin, consumer = await self._clients()
        described = await admin.describe_topics([self._topic])
        if errors := [topic["error_code"] for topic in described if topic["error_code"] != 0]:
            # A topic being created or a leader being elected: not read this round, rather than
            # a loss (a lost topic is re-created at once by this very request on Tansu).
            raise RuntimeError(f"the referrals topic not described: error {errors}")
        partitions = [
            TopicPartition(self._topic, int(partition["partition"]))
            for topic in described
            for partition in topic["partitions"]
        ]
        ends = await consumer.end_offsets(partitions) if partitions else {}
        committed = (
            await admin.list_consumer_group_offsets(self._group, partitions=partitions) if partitions else {}
        )
        return LogState(
            ends={tp.partition: offset for tp, offset in ends.items()},
            committed=any(meta.offset >= 0 for meta in committed.values()),
        )

    async def _clients(self) -> tuple[AIOKafkaAdminClient, AIOKafkaConsumer]:
        if self._admin is None or self._consumer is None:
            bootstrap, _ = self._settings.require_servers()
            timeout = self._settings.kafka_request_timeout_ms
            admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=timeout)
            consumer = AIOKafkaConsumer(
                bootstrap_servers=bootstrap, enable_auto_commit=False, request_timeout_ms=timeout
            )
            self._admin, self._consumer = admin, consumer  # closed by _close() even if a start fails
            await admin.start()
            await consumer.start()
        return self._admin, self._consumer

    async def _close(self) -> None:
        admin, consumer, self._admin, self._consumer = self._admin, self._consumer, None, None
        if consumer is not None:
            with suppress(Exception):
                await consumer.stop()
        if admin is not None:
            with suppress(Exception):
                await admin.close()
