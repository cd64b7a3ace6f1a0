"""Which partition assignment a fetched batch belongs to, so only the current one commits offsets.

A batch's offsets are committed once its fold is stored, which may be after a rebalance. aiokafka
accepts an explicit commit for any partition assigned *now*, whichever assignment the records came
from. After a rebalance that gave this consumer the same partitions again, that is harmless on the
same log; but when the broker lost its log (the embedded Tansu restarted), the batch's offsets are
positions in the old log, and committing them on the new one skips that many of its records, for
good: what analytics had not yet read is then never counted. So each batch carries the number of
the assignment it was fetched under; a commit from an earlier one is dropped (the fold is stored,
and the partition's owner reads it again from the committed offset and skips it by event id).
"""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition


class Assignments(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka's listener is untyped
    """The consumer's rebalance listener: counts assignments and guards commits with the count."""

    def __init__(self) -> None:
        self.current = 0  # the assignment records fetched now belong to
        # Held across a commit: aiokafka awaits on_partitions_revoked before rejoining, so a commit
        # under way ends (accepted or refused) under the old membership before the count moves on.
        self._committing = asyncio.Lock()

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        async with self._committing:
            self.current += 1

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        pass  # the count moved on at the revocation that comes before every assignment

    async def commit(
        self, consumer: AIOKafkaConsumer, offsets: dict[TopicPartition, int], *, fetched_under: int
    ) -> bool:
        """Commit `offsets` if they were fetched under the current assignment; False if not."""
        async with self._committing:
            if fetched_under != self.current:
                return False
            await consumer.commit(offsets)
            return True
