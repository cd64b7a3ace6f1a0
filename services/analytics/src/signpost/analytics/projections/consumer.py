"""The live projection consumer: batches from every topic analytics reads, one transaction each.

aiokafka's `getmany` rather than a per-message subscriber: one transaction per
batch is what lets a pure-Python MongoDB keep up (see bench/analytics.py), and each
batch is folded while the one fetched before it commits (pipeline.py), which the shared
batch subscriber, handling one batch at a time, cannot do. Offsets commit after the
batch's transaction; a failed batch is re-read from its first offsets after a pause
(with the batch fetched after it), and its events already folded are skipped by their ids.

Failures follow the shared consumer's rules (signpost.shared.retries): while MongoDB
is away the batch is retried in place; an event the fold itself fails on is found
by folding the batch's events one at a time and goes to the dead-letter topic, so
it never stalls its partition; a message that is not an event is dead-lettered.

While a rebuild fills a new projection set, the live consumer folds into it only once the
replay has caught up with the log (the pointer says so), and then each partition of an
ordered topic only from where the set has got (`Fetched.spans`, fold_batch's `in_order`):
a referral's fact is folded in log order in the new set as in the active one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Collection, Iterable, Sequence
from contextlib import suppress
from dataclasses import InitVar, dataclass, field

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError
from signpost.analytics.projections.assignments import Assignments
from signpost.analytics.projections.cache import WriteCache
from signpost.analytics.projections.fold import fold_batch
from signpost.analytics.projections.follower import FactsFollower
from signpost.analytics.projections.pipeline import FoldPipeline, PipelineFailed, collect_less_often
from signpost.analytics.projections.sets import Spans, read_pointer
from signpost.shared.errors import describe_error
from signpost.shared.events import Envelope, EventContractError, EventData, from_kafka, header_texts
from signpost.shared.kafka import dead_letter
from signpost.shared.logging import get_logger
from signpost.shared.retries import (
    HANDLER_FAILED,
    NOT_AN_EVENT,
    backoff_delay,
    is_infrastructure_failure,
)
from signpost.shared.service import Runtime
from signpost.shared.settings import Settings
from signpost.shared.topics import Topics

log = get_logger(__name__)

# Enough bytes per partition fetch for a full batch (SIGNPOST_ANALYTICS_BATCH_MAX) of ~1 KiB events
# across a few partitions; a fetch as a whole stays within aiokafka's 50 MiB.
PARTITION_FETCH_BYTES = 8 * 2**20
POLL_TIMEOUT_MS = 500
# While a batch commits, the next is fetched meanwhile if it comes this soon; otherwise the stream is
# quiet, and the batch in flight is finished (into the index, offsets committed) without waiting.
# Short: a batch is counted only once it is finished, and a backlog's records are already fetched.
IN_FLIGHT_POLL_MS = 5


def source_topics(topics: Topics) -> list[str]:
    """Everything the projections are folded from, and so everything a rebuild replays."""
    return [topics.referrals, topics.provisions, topics.settings_register]


def ordered_topics(topics: Topics) -> list[str]:
    """Those whose events the fold needs in log order: a referral's lifecycle (facts.py), one
    partition per referral, never compacted. The catalogue's fold keeps the newest state of each
    provision and setting whatever the order (fold.py), and its topics are compacted, so a batch
    of them may start past offsets that no longer hold a record."""
    return [topics.referrals]


Decoded = tuple[ConsumerRecord[bytes, bytes], Envelope[EventData]]


def decode(
    records: Iterable[ConsumerRecord[bytes, bytes]], *, max_bytes: int
) -> tuple[list[Decoded], list[tuple[ConsumerRecord[bytes, bytes], str]]]:
    """The valid events with their records, and the records that are not events (with the reason).

    A body over `max_bytes` is not read: it is dead-lettered, as intake and routing do.
    """
    events: list[Decoded] = []
    invalid: list[tuple[ConsumerRecord[bytes, bytes], str]] = []
    for record in records:
        headers = header_texts(record.headers)
        try:
            events.append((record, from_kafka(record.value, headers, max_bytes=max_bytes)))
        except EventContractError as exc:
            invalid.append((record, exc.reason))
    return events, invalid


async def fold_live(
    runtime: Runtime,
    envelopes: Sequence[Envelope[EventData]],
    *,
    spans: Spans,
    facts: FactsFollower,
    cache: WriteCache,
) -> None:
    """Into the active set, and into the set a rebuild is filling once its replay has caught up
    (in log order: `spans` are the batch's, see `Fetched.spans`); `facts` sees each commit."""
    pointer = await read_pointer(runtime.db)
    for target in pointer.targets():
        folded = await fold_batch(
            runtime.client,
            runtime.db,
            target=target,
            envelopes=envelopes,
            cache=cache,
            lease=facts.lease,
            in_order=spans if pointer.in_order(target) else None,
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
        fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms,
        max_partition_fetch_bytes=PARTITION_FETCH_BYTES,
    )


@dataclass(eq=False)
class Fetched:
    """One fetch's records, folded as one batch."""

    records: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]
    max_bytes: InitVar[int]
    assignment: int  # `Assignments.current` when fetched
    events: list[Decoded] = field(init=False)
    invalid: list[tuple[ConsumerRecord[bytes, bytes], str]] = field(init=False)
    began: float = field(default_factory=time.perf_counter)

    def __post_init__(self, max_bytes: int) -> None:
        self.events, self.invalid = decode(
            (record for records in self.records.values() for record in records), max_bytes=max_bytes
        )

    @property
    def envelopes(self) -> list[Envelope[EventData]]:
        return [envelope for _, envelope in self.events]

    def spans(self, ordered: Collection[str]) -> dict[tuple[str, int], tuple[int, int]]:
        """Each partition of an `ordered` topic: where its records start, and the position after the
        last. Every record in between is here: a partition's records come one after the other, and
        the ordered topics have no gaps in their offsets (no compaction, no transactions)."""
        return {
            (partition.topic, partition.partition): (records[0].offset, records[-1].offset + 1)
            for partition, records in self.records.items()
            if partition.topic in ordered and records
        }


async def run_projection_consumer(runtime: Runtime, facts: FactsFollower) -> None:
    """Consume until cancelled, in the analytics consumer group."""
    collect_less_often()
    consumer = create_consumer(runtime.settings, group=runtime.topics.group(runtime.service))
    assignments = Assignments()
    consumer.subscribe(source_topics(runtime.topics), listener=assignments)
    await consumer.start()
    cache = WriteCache(size=runtime.settings.analytics_cache_documents)
    pipeline: FoldPipeline[Fetched] = FoldPipeline(runtime.client, runtime.db, facts=facts, cache=cache)
    ordered = set(ordered_topics(runtime.topics))
    unfinished: list[Fetched] = []  # fetched, offsets not committed yet: oldest first
    attempt = 0
    try:
        while True:
            fetched = await consumer.getmany(
                timeout_ms=IN_FLIGHT_POLL_MS if pipeline.in_flight else POLL_TIMEOUT_MS,
                max_records=runtime.settings.analytics_batch_max,
            )
            # Numbered as getmany returns, before anything else runs: the current assignment's records.
            batch = (
                Fetched(fetched, runtime.settings.event_max_bytes, assignments.current) if fetched else None
            )
            if batch is not None:
                unfinished.append(batch)
            try:
                try:
                    if batch is None:
                        stored = await pipeline.flush()  # nothing more waiting: finish the batch in flight
                    else:
                        # Read after the batch was fetched: a rebuild that hands its set over after this
                        # read finds the batch's records below the log's end it measures next (service.py).
                        pointer = await read_pointer(runtime.db)
                        targets = pointer.targets()
                        in_order = {t.name: batch.spans(ordered) for t in targets if pointer.in_order(t)}
                        stored = await pipeline.push(
                            batch, batch.envelopes, targets=targets, in_order=in_order
                        )
                except PipelineFailed as failure:
                    for done in failure.committed:
                        await _finish(runtime, consumer, assignments, done, unfinished)
                    if is_infrastructure_failure(failure.error):
                        raise failure.error from failure
                    stored = []
                    for failed in failure.failed:  # nothing in flight now: one batch after the other
                        await _fold_or_isolate(runtime, failed, ordered=ordered, facts=facts, cache=cache)
                        stored.append(failed)
                for done in stored:
                    await _finish(runtime, consumer, assignments, done, unfinished)
                attempt = 0
            except Exception as exc:
                with suppress(PipelineFailed):
                    await pipeline.flush()  # what it committed must reach the index; it is read again anyway
                for failed in unfinished:
                    _observe(runtime, failed, failed=True)
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
                    events=sum(len(failed.events) for failed in unfinished),
                )
                await asyncio.sleep(delay)
                _rewind(consumer, unfinished, assignment=assignments.current)
                unfinished.clear()
    finally:
        await pipeline.close()
        await consumer.stop()


async def _finish(
    runtime: Runtime,
    consumer: AIOKafkaConsumer,
    assignments: Assignments,
    batch: Fetched,
    unfinished: list[Fetched],
) -> None:
    """A batch stored: dead-letter what was not an event, then commit its offsets. After a rebalance
    they are not committed: the partitions' owner reads the batch again and skips what is folded."""
    for record, reason in batch.invalid:
        await _dead_letter(runtime, record, kind=NOT_AN_EVENT, error=reason)
    _observe(runtime, batch, failed=False)
    unfinished.remove(batch)
    offsets = {partition: records[-1].offset + 1 for partition, records in batch.records.items()}
    try:
        committed = await assignments.commit(consumer, offsets, fetched_under=batch.assignment)
    except CommitFailedError:
        committed = False
    if not committed:
        log.warning(
            "offsets not committed: the batch was fetched before a rebalance", events=len(batch.events)
        )


def _rewind(consumer: AIOKafkaConsumer, batches: Sequence[Fetched], *, assignment: int) -> None:
    """Read these batches again: each partition from the first offset any of them holds. Those of
    an earlier `assignment` are left out: their offsets may be of a log the broker lost, and the
    rebalance since has set the partitions' positions anyway."""
    first: dict[TopicPartition, int] = {}
    for batch in (batch for batch in batches if batch.assignment == assignment):
        for partition, records in batch.records.items():
            first[partition] = min(first.get(partition, records[0].offset), records[0].offset)
    for partition, offset in first.items():
        with suppress(IllegalStateError):  # no longer ours after a rebalance
            consumer.seek(partition, offset)


async def _fold_or_isolate(
    runtime: Runtime, batch: Fetched, *, ordered: Collection[str], facts: FactsFollower, cache: WriteCache
) -> None:
    """One transaction for the batch; if the fold fails on something other than the database
    being away, fold the events one at a time so only the event at fault is dead-lettered (and
    a set being rebuilt moves past it as the active one does)."""
    events, spans = batch.events, batch.spans(ordered)
    try:
        await fold_live(runtime, batch.envelopes, spans=spans, facts=facts, cache=cache)
        return
    except Exception as exc:
        if is_infrastructure_failure(exc):
            raise
        log.warning("projection batch failed; folding its events one by one", error=describe_error(exc))
    for record, envelope in events:
        partition = (record.topic, record.partition)
        one = {partition: (spans[partition][0], record.offset + 1)} if partition in spans else {}
        try:
            await fold_live(runtime, [envelope], spans=one, facts=facts, cache=cache)
        except Exception as exc:
            if is_infrastructure_failure(exc):
                raise
            await _dead_letter(runtime, record, kind=HANDLER_FAILED, error=describe_error(exc), attempts=1)
    if spans:  # a set being rebuilt moves past what was dead-lettered too, as the active one has
        await fold_live(runtime, [], spans=spans, facts=facts, cache=cache)


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


def _observe(runtime: Runtime, batch: Fetched, *, failed: bool) -> None:
    """Handler timings for /metrics: a batch is one fold, from its fetch until it is stored (or
    failed), so each event is given an equal share of it."""
    seconds = time.perf_counter() - batch.began
    for _, envelope in batch.events:
        runtime.metrics.observe_handler(
            event_type=envelope.type, seconds=seconds / len(batch.events), failed=failed
        )
