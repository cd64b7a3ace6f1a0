"""`signpost dlq`: inspect and replay messages no consumer could read.

A dead letter keeps the original bytes, key and headers, plus `dlq_*` headers saying
which service refused it, why, where it came from and after how many attempts (0:
not an event, never handled). Replaying publishes the original message, without the
`dlq_*`/`retry_*` headers, to its original topic again (consumers deduplicate by event
id, so replaying a valid event twice changes nothing). Every service that reads a topic
dead-letters a message none can read, and a replayed one refused again leaves another letter,
so one message can leave several letters: a replay publishes it once. A letter cut short because it was too large to dead-letter whole
(`signpost.shared.kafka.cut_short`) is not the message that was refused, and is never replayed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import ClassVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import TopicPartition
from signpost.shared.events import header_texts
from signpost.shared.retries import original_headers

UNKNOWN = "?"
# What `signpost.shared.kafka.cut_short` adds to `dlq_error` when a dead letter was too large to
# publish whole: its body (to 16 KiB) and headers may have been cut.
CUT_SHORT_MARK = "too large to dead-letter whole"


class CutShort(ValueError):
    """Dead letters cut short were asked to be replayed: they would publish a truncated message."""

    def __init__(self, offsets: list[int]) -> None:
        super().__init__(
            f"dead letter(s) {offsets} were cut short (too large to dead-letter whole): replaying one"
            " would publish a truncated message, not the one refused"
        )
        self.offsets = offsets


@dataclass(frozen=True)
class DeadLetter:
    offset: int
    key: bytes | None
    value: bytes
    headers: dict[str, str]  # the original message's
    error: str
    service: str
    original_topic: str
    origin: str  # topic[partition]@offset
    attempts: str  # how many times the handler failed; 0 when the message was not an event
    kind: str  # not-an-event or handler-failed
    first_failed_at: str | None
    source: tuple[str, str, str] | None  # (topic, partition, offset), when the letter says all three

    HEADING: ClassVar[str] = (
        f"{'offset':>6}  {'service':<9}  {'kind':<14}  {'attempts':>8}  {'origin':<40}  {'key':<36}  "
        f"{'type':<40}  reason"
    )

    @property
    def replayable(self) -> bool:
        return self.original_topic != UNKNOWN

    @property
    def cut_short(self) -> bool:
        """Whether this letter keeps only part of the message (`CUT_SHORT_MARK`)."""
        return CUT_SHORT_MARK in self.error

    def summary(self) -> str:
        event_type = self.headers.get("ce_type", "(no ce_type)")
        return (
            f"{self.offset:>6}  {self.service:<9}  {self.kind:<14}  {self.attempts:>8}  {self.origin:<40}  "
            f"{self._key_text():<36}  {event_type:<40}  {self.error}"
        )

    def _key_text(self) -> str:
        return self.key.decode("utf-8", "replace") if self.key else "(none)"

    def details(self) -> str:
        try:
            body = json.dumps(json.loads(self.value), indent=2)
        except ValueError:
            body = repr(self.value[:2000])
        lines = [
            f"dead letter {self.offset}",
            f"  refused by: {self.service}",
            f"  kind:       {self.kind}",
            f"  error:      {self.error}",
            f"  attempts:   {self.attempts}"
            + (f" (first failed {self.first_failed_at})" if self.first_failed_at else ""),
            f"  from:       {self.origin}",
            f"  key:        {self._key_text()}",
            "  headers:",
            *(f"    {name}: {value}" for name, value in sorted(self.headers.items())),
            "  body:",
            *(f"    {line}" for line in body.splitlines()),
        ]
        return "\n".join(lines)


async def read_dead_letters(*, bootstrap: str, topic: str) -> list[DeadLetter]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        await consumer.start()  # inside: a broker away still leaves the consumer closed
        partitions = [TopicPartition(topic, p) for p in await _partitions(consumer, topic)]
        if not partitions:
            return []
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        letters: list[DeadLetter] = []
        while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
            for batch in (await consumer.getmany(timeout_ms=1000)).values():
                letters.extend(
                    parse_dead_letter(record.offset, record.key, record.value, record.headers)
                    for record in batch
                )
        return sorted(letters, key=lambda letter: letter.offset)
    finally:
        await consumer.stop()


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    await consumer.topics()  # loads metadata
    return consumer.partitions_for_topic(topic) or set()


def parse_dead_letter(
    offset: int, key: bytes | None, value: bytes | None, raw_headers: Iterable[tuple[str, bytes | None]]
) -> DeadLetter:
    headers = header_texts(raw_headers)
    topic = headers.get("dlq_topic", UNKNOWN)
    partition, source_offset = headers.get("dlq_partition"), headers.get("dlq_offset")
    return DeadLetter(
        offset=offset,
        key=key,
        value=value or b"",
        headers=original_headers(headers),
        error=headers.get("dlq_error", "(unknown)"),
        service=headers.get("dlq_service", "?"),
        original_topic=topic,
        origin=f"{topic}[{partition or '?'}]@{source_offset or '?'}",
        attempts=headers.get("dlq_attempts", "?"),
        kind=headers.get("dlq_kind", "?"),
        first_failed_at=headers.get("dlq_first_failed_at"),
        source=(topic, partition, source_offset)
        if topic != UNKNOWN and partition and source_offset
        else None,
    )


def one_per_source(letters: Iterable[DeadLetter]) -> tuple[list[DeadLetter], dict[int, list[int]]]:
    """The first letter of each original message, and by its offset the later letters it stands for.

    Intake, routing and analytics each dead-letter a message none can read: replaying all
    three letters would publish it three times, and each copy would be dead-lettered three
    times again. A message replayed and refused again is a new letter from a new place with the
    same event id (`ce_id`): one event, replayed once. Letters that say neither where they came
    from nor an event id are never folded together.
    """
    kept: dict[tuple[str, ...] | int, DeadLetter] = {}
    folded: dict[int, list[int]] = {}
    for letter in letters:
        event_id = letter.headers.get("ce_id")
        key = (
            (letter.original_topic, event_id)
            if event_id and letter.replayable
            else letter.source or letter.offset
        )
        if key in kept:
            folded.setdefault(kept[key].offset, []).append(letter.offset)
        else:
            kept[key] = letter
    return list(kept.values()), folded


async def replay(*, bootstrap: str, letters: list[DeadLetter]) -> None:
    """Publish each original message to its original topic, in dead-letter order; none (CutShort)
    when any letter was cut short."""
    if cut := [letter.offset for letter in letters if letter.cut_short]:
        raise CutShort(cut)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    try:
        await producer.start()
        for letter in letters:
            await producer.send_and_wait(
                letter.original_topic,
                letter.value,
                key=letter.key,
                headers=[(name, value.encode()) for name, value in letter.headers.items()],
            )
    finally:
        await producer.stop()
