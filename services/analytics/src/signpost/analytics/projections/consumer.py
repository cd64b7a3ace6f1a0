"""The live projection consumer: batches from every topic analytics reads, one transaction each.

aiokafka's `getmany` rather than a per-message subscriber: one transaction per
batch is what lets a pure-Python MongoDB keep up (see bench/analytics.py). Offsets
commit after the batch's transaction; a failed batch is re-read from its first
offsets after a pause, and its events already folded are skipped by their ids.

Failures follow the shared consumer's rules (signpost.shared.retries): while MongoDB
is away the batch is retried in place; an event the fold itself fails on is found
by folding the batch's events one at a time and goes to the dead-letter topic, so
it never stalls its partition; a message that is not an event is dead-lettered.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Sequence
from contextlib import suppress

from aiokafka import AIOKafkaConsumer, ConsumerRecord
from aiokafka.errors import CommitFailedError, IllegalStateError
from signpost.analytics.projections.cache import WriteCache
from signpost.analytics.projections.fold import fold_batch
from signpost.analytics.projections.follower import FactsFollower
from signpost.analytics.projections.sets import read_pointer
from signpost.shared.events import Envelope, EventContractError, EventData, from_kafka
from signpost.shared.kafka import dead_letter
from signpost.shared.logging import get_logger
from signpost.shared.retries import (
    HANDLER_FAILED,
    NOT_AN_EVENT,
    backoff_delay,
    describe_error,
    is_infrastructure_failure,
)
from signpost.shared.service import Runtime
from signpost.shared.settings import Settings
from signpost.shared.topics import Topics

log = get_logger(__name__)

# Enough bytes per partition fetch for a full batch of ~1 KiB events across a few partitions.
PARTITION_FETCH_BYTES = 4 * 2**20
POLL_TIMEOUT_MS = 500


def source_topics(topics: Topics) -> list[str]:
    """Everything the projections are folded from, and so everything a rebuild replays."""
    return [topics.referrals, topics.provisions, topics.settings_register]


Decoded = tuple[ConsumerRecord[bytes, bytes], Envelope[EventData]]


def decode(
    records: Iterable[ConsumerRecord[bytes, bytes]],
) -> tuple[list[Decoded], list[tuple[ConsumerRecord[bytes, bytes], str]]]:
    """The valid events with their records, and the records that are not events (with the reason)."""
    events: list[Decoded] = []
    invalid: list[tuple[ConsumerRecord[bytes, bytes], str]] = []
    for record in records:
        headers = {key: value.decode("utf-8", "replace") for key, value in record.headers}
        try:
            events.append((record, from_kafka(record.value, headers)))
        except EventContractError as exc:
            invalid.append((record, exc.reason))
    return events, invalid


async def fold_live(
    runtime: Runtime, envelopes: Sequence[Envelope[EventData]], *, facts: FactsFollower, cache: WriteCache
) -> None:
    """Into the active set, and into the set a rebuild is filling, if any; `facts` sees each commit."""
    pointer = await read_pointer(runtime.db)
    for target in pointer.targets():
        folded = await fold_batch(
            runtime.client, runtime.db, target=target, envelopes=envelopes, cache=cache, lease=facts.lease
        )
        facts.apply(target, folded.facts)


def create_consumer(settings: Settings, *, group: str | None) -> AIOKafkaConsumer:
    bootstrap, _ = settings.require_servers()
    return AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=group,
        client_id="signpost-analytics",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=settings.kafka_session_timeout_ms,
        heartbeat_interval_ms=settings.kafka_heartbeat_interval_ms,
        request_timeout_ms=settings.kafka_request_timeout_ms,
        max_partition_fetch_bytes=PARTITION_FETCH_BYTES,
    )


async def run_projection_consumer(runtime: Runtime, facts: FactsFollower) -> None:
    """Consume until cancelled, in the analytics consumer group."""
    consumer = create_consumer(runtime.settings, group=runtime.topics.group(runtime.service))
    consumer.subscribe(source_topics(runtime.topics))
    await consumer.start()
    cache = WriteCache(size=runtime.settings.analytics_cache_documents)
    attempt = 0
    try:
        while True:
            fetched = await consumer.getmany(
                timeout_ms=POLL_TIMEOUT_MS, max_records=runtime.settings.analytics_batch_max
            )
            if not fetched:
                continue
            events, invalid = decode(record for records in fetched.values() for record in records)
            started = time.perf_counter()
            try:
                await _fold_or_isolate(runtime, events, facts=facts, cache=cache)
                for record, reason in invalid:
                    await _dead_letter(runtime, record, kind=NOT_AN_EVENT, error=reason)
            except Exception as exc:
                _observe(runtime, events, seconds=time.perf_counter() - started, failed=True)
                attempt += 1
                delay = backoff_delay(
                    attempt,
                    initial_s=runtime.settings.consumer_backoff_initial_s,
                    max_s=runtime.settings.consumer_backoff_max_s,
                )
                log.warning(
                    "projection batch not stored; retrying in place",
                    attempt=attempt,
                    retry_in_s=delay,
                    error=describe_error(exc),
                    events=len(events),
                )
                await asyncio.sleep(delay)
                for partition, records in fetched.items():
                    with suppress(IllegalStateError):  # no longer ours after a rebalance
                        consumer.seek(partition, records[0].offset)
                continue
            attempt = 0
            _observe(runtime, events, seconds=time.perf_counter() - started, failed=False)
            try:
                await consumer.commit(
                    {partition: records[-1].offset + 1 for partition, records in fetched.items()}
                )
            except CommitFailedError:
                # A rebalance took the partitions; their next owner re-reads and skips what is folded.
                log.warning("offset commit refused after a rebalance", events=len(events))
    finally:
        await consumer.stop()


async def _fold_or_isolate(
    runtime: Runtime, events: Sequence[Decoded], *, facts: FactsFollower, cache: WriteCache
) -> None:
    """One transaction for the batch; if the fold fails on something other than the database
    being away, fold the events one at a time so only the event at fault is dead-lettered."""
    try:
        await fold_live(runtime, [envelope for _, envelope in events], facts=facts, cache=cache)
        return
    except Exception as exc:
        if is_infrastructure_failure(exc):
            raise
        log.warning("projection batch failed; folding its events one by one", error=describe_error(exc))
    for record, envelope in events:
        try:
            await fold_live(runtime, [envelope], facts=facts, cache=cache)
        except Exception as exc:
            if is_infrastructure_failure(exc):
                raise
            await _dead_letter(runtime, record, kind=HANDLER_FAILED, error=describe_error(exc), attempts=1)


async def _dead_letter(
    runtime: Runtime, record: ConsumerRecord[bytes, bytes], *, kind: str, error: str, attempts: int = 0
) -> None:
    await dead_letter(
        runtime.broker,
        topics=runtime.topics,
        service=runtime.service,
        record=record,
        kind=kind,
        error=error,
        attempts=attempts,
    )


def _observe(runtime: Runtime, events: Sequence[Decoded], *, seconds: float, failed: bool) -> None:
    """Handler timings for /metrics: a batch is one fold, so each event is given an equal share of it."""
    for _, envelope in events:
        runtime.metrics.observe_handler(
            event_type=envelope.type, seconds=seconds / len(events), failed=failed
        )
