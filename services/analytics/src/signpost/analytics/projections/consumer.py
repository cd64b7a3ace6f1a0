"""The live projection consumer: batches from every topic analytics reads, one transaction each.

aiokafka's `getmany` rather than a per-message subscriber: one transaction per
batch is what lets a pure-Python MongoDB keep up (see bench/analytics.py). Offsets
commit after the batch's transaction; a failed batch is re-read from its first
offsets after a pause, and its events already folded are skipped by their ids.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from contextlib import suppress

from aiokafka import AIOKafkaConsumer, ConsumerRecord
from aiokafka.errors import CommitFailedError, IllegalStateError
from signpost.analytics.projections.fold import fold_batch
from signpost.analytics.projections.sets import read_pointer
from signpost.shared.events import Envelope, EventContractError, EventData, from_kafka
from signpost.shared.kafka import HANDLER_FAILURE_PAUSE_S, dead_letter_record
from signpost.shared.logging import get_logger
from signpost.shared.service import Runtime
from signpost.shared.settings import Settings
from signpost.shared.topics import Topics

log = get_logger(__name__)

MAX_BATCH = 1000
POLL_TIMEOUT_MS = 500


def source_topics(topics: Topics) -> list[str]:
    """Everything the projections are folded from, and so everything a rebuild replays."""
    return [topics.referrals, topics.provisions, topics.settings_register]


def decode(
    records: Iterable[ConsumerRecord[bytes, bytes]],
) -> tuple[list[Envelope[EventData]], list[tuple[ConsumerRecord[bytes, bytes], str]]]:
    """The valid events, and the records that are not (with the reason) for the dead-letter topic."""
    envelopes: list[Envelope[EventData]] = []
    invalid: list[tuple[ConsumerRecord[bytes, bytes], str]] = []
    for record in records:
        headers = {key: value.decode("utf-8", "replace") for key, value in record.headers}
        try:
            envelopes.append(from_kafka(record.value, headers))
        except EventContractError as exc:
            invalid.append((record, exc.reason))
    return envelopes, invalid


async def fold_live(runtime: Runtime, envelopes: Sequence[Envelope[EventData]]) -> None:
    """Into the active set, and into the set a rebuild is filling, if any."""
    pointer = await read_pointer(runtime.db)
    for target in pointer.targets():
        await fold_batch(runtime.client, runtime.db, target=target, envelopes=envelopes)


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
    )


async def run_projection_consumer(runtime: Runtime) -> None:
    """Consume until cancelled, in the analytics consumer group."""
    consumer = create_consumer(runtime.settings, group=runtime.topics.group(runtime.service))
    consumer.subscribe(source_topics(runtime.topics))
    await consumer.start()
    try:
        while True:
            fetched = await consumer.getmany(timeout_ms=POLL_TIMEOUT_MS, max_records=MAX_BATCH)
            if not fetched:
                continue
            envelopes, invalid = decode(record for records in fetched.values() for record in records)
            try:
                for record, reason in invalid:
                    await dead_letter_record(
                        runtime.broker,
                        topics=runtime.topics,
                        record=record,
                        error=reason,
                        service="analytics",
                    )
                await fold_live(runtime, envelopes)
            except Exception:
                log.exception("projection batch failed; will retry", events=len(envelopes))
                await asyncio.sleep(HANDLER_FAILURE_PAUSE_S)
                for partition, records in fetched.items():
                    with suppress(IllegalStateError):  # no longer ours after a rebalance
                        consumer.seek(partition, records[0].offset)
                continue
            try:
                await consumer.commit(
                    {partition: records[-1].offset + 1 for partition, records in fetched.items()}
                )
            except CommitFailedError:
                # A rebalance took the partitions; their next owner re-reads and skips what is folded.
                log.warning("offset commit refused after a rebalance", events=len(envelopes))
    finally:
        await consumer.stop()
