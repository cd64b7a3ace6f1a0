"""Transactional outbox: an event is stored with the change that caused it, then relayed.

A service writes its change and `stage_event` in one MongoDB transaction, so either
both happen or neither does. The relay publishes pending events to Kafka in id
order (UUIDv7: creation order) and marks them published; while Kafka is away the
events simply wait, and the service keeps accepting work.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from faststream.kafka import KafkaBroker
from pymongo import ASCENDING, IndexModel
from signpost.shared.events import Envelope, to_kafka_headers, to_kafka_value
from signpost.shared.logging import get_logger
from signpost.shared.mongo import Database, Session

log = get_logger(__name__)

OUTBOX = "outbox"
PUBLISHED_RETENTION_S = 7 * 24 * 3600  # published events are kept a week for inspection
OUTBOX_INDEXES = [
    IndexModel([("published_at", ASCENDING), ("_id", ASCENDING)]),
    # TTL skips documents whose published_at is null, so pending events never expire.
    IndexModel(
        [("created_at", ASCENDING)],
        name="published_ttl",
        expireAfterSeconds=PUBLISHED_RETENTION_S,
        partialFilterExpression={"published_at": {"$type": "date"}},
    ),
]

BATCH_SIZE = 200
MAX_BACKOFF_S = 5.0


def _staged(topic: str, envelope: Envelope[Any]) -> dict[str, Any]:
    return {
        "_id": envelope.id,
        "topic": topic,
        "key": envelope.subject,
        "headers": to_kafka_headers(envelope),
        "value": to_kafka_value(envelope),
        "created_at": datetime.now(UTC),
        "published_at": None,
    }


async def stage_event(db: Database, *, topic: str, envelope: Envelope[Any], session: Session) -> None:
    await db[OUTBOX].insert_one(_staged(topic, envelope), session=session)


async def stage_events(
    db: Database, *, topic: str, envelopes: Sequence[Envelope[Any]], session: Session
) -> None:
    """Several events in one round trip, in order (ids are time-ordered, so the relay keeps it)."""
    if envelopes:
        await db[OUTBOX].insert_many([_staged(topic, envelope) for envelope in envelopes], session=session)


async def restage_event(db: Database, *, event_id: str, session: Session) -> bool:
    """Queue an event that was already published to go out again, with its same id.

    For events that may have been lost downstream (say a broker that lost its log):
    consumers deduplicate by event id, so a second copy changes nothing. Returns False
    when the event is no longer in the outbox (published events expire after a week).
    """
    result = await db[OUTBOX].update_one(
        {"_id": event_id},
        # created_at restarts the retention clock, so an event still needed is not swept.
        {"$set": {"published_at": None, "created_at": datetime.now(UTC)}},
        session=session,
    )
    return result.matched_count == 1


async def pending_count(db: Database) -> int:
    return await db[OUTBOX].count_documents({"published_at": None})


class OutboxRelay:
    """Publishes staged events; `notify()` after a commit wakes it without waiting for the poll."""

    def __init__(self, *, db: Database, broker: KafkaBroker, poll_interval_s: float) -> None:
        self._db = db
        self._broker = broker
        self._poll_interval_s = poll_interval_s
        self._wake = asyncio.Event()

    def notify(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        backoff = 0.0
        while True:
            # Cleared before draining: a commit notified while the drain runs wakes the next round.
            self._wake.clear()
            try:
                published = await self.drain()
                backoff = 0.0
            except Exception as exc:
                backoff = min(MAX_BACKOFF_S, backoff * 2 or 0.25)
                log.warning("outbox relay cannot publish yet; retrying", error=repr(exc), retry_in_s=backoff)
                await asyncio.sleep(backoff)
                continue
            if published >= BATCH_SIZE:  # maybe more behind it; a short batch was everything pending
                continue
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow the cancellation
            # that stops the service when the wake-up lands at the same moment, hanging shutdown.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._poll_interval_s):
                    await self._wake.wait()

    async def flush(self, *, timeout_s: float) -> None:
        """At shutdown: publish what is pending within `timeout_s`; anything left goes at the next start."""
        try:
            async with asyncio.timeout(timeout_s):
                while await self.drain():
                    pass
        except Exception as exc:  # Kafka away or out of time: the events stay staged, nothing is lost
            log.warning(
                "outbox not flushed before stopping; pending events go at the next start", error=repr(exc)
            )

    async def drain(self) -> int:
        """Publish one batch of pending events; returns how many were published."""
        pending = (
            await self._db[OUTBOX]
            .find({"published_at": None})
            .sort("_id", ASCENDING)
            .limit(BATCH_SIZE)
            .to_list()
        )
        if not pending:
            return 0
        # Send the whole batch before awaiting acks: the producer keeps each partition's order.
        acks = [
            await self._broker.publish(
                doc["value"],
                doc["topic"],
                key=doc["key"].encode(),
                headers=doc["headers"],
                no_confirm=True,
            )
            for doc in pending
        ]
        await asyncio.gather(*acks)
        await self._db[OUTBOX].update_many(
            {"_id": {"$in": [doc["_id"] for doc in pending]}},
            {"$set": {"published_at": datetime.now(UTC)}},
        )
        return len(pending)
