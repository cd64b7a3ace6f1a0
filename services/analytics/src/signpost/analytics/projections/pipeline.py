"""Fold the next batch while the one before commits, so this process's CPU and MongoDB's overlap.

A batch costs this process CPU to fold its events and MongoDB CPU to run its transaction; one
after the other, each waits for the other. Here batch N+1 is folded in memory (`prepare_batch`)
while N's transaction runs, and N's facts go into the in-memory index while N+1's runs.

N+1 is folded from what N is writing: N's facts as N prepared them, else the cache, else MongoDB
(N does not write those). That is only right once N has committed exactly those facts, so:
- N+1's folded facts are written only after N committed what it had prepared; if N's transaction
  folded again instead (a stale copy, see fold.py), N+1 is folded again in its own transaction,
  and N+2 is folded once N+1 has committed (then the overlap resumes).
- If N fails, N+1 is dropped unwritten with it and both are handed back (`PipelineFailed`) to be
  folded again: the cache and the index only ever take what a committed transaction wrote.
- N+1's transaction starts after N's has ended, so a fact is never written by two at once, and
  the transaction still checks the writers' leases before writing what was folded ahead (fold.py).
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from functools import partial
from typing import Generic, TypeVar

from pymongo.asynchronous.mongo_client import AsyncMongoClient
from signpost.analytics.projections.cache import WriteCache
from signpost.analytics.projections.fold import Folded, Prepared, fold_batch, prepare_batch
from signpost.analytics.projections.follower import FactsFollower
from signpost.analytics.projections.sets import ProjectionSet, Spans
from signpost.shared.events import Envelope, EventData
from signpost.shared.mongo import Database, Document

Batch = TypeVar("Batch")  # what the caller knows a batch by (its Kafka records, say)

# Facts handed to the index between two turns of the event loop (see fold.FOLD_TURN).
INDEX_TURN = 500
# Python collects its oldest generation of objects, walking every object it tracks (the index's,
# the cache's), after 10 collections of the middle one if a quarter more objects have survived
# since. A batch's events live across two batches, so they reach the oldest generation: each batch
# set off a full collection, about 40% of this process's CPU at 200k-300k events (bench/analytics.py).
# After 100, full collections still took about 40 ms of CPU per 1,000 events at 1M events; after
# 1,000, about 10 ms (`bench/analytics.py --full-collection-after`). Nearly everything a batch leaves
# behind is freed by reference counting at once; the few reference cycles wait longer.
FULL_COLLECTION_AFTER = 1000


def collect_less_often(*, after: int = FULL_COLLECTION_AFTER) -> None:
    """For a process that folds batches (process-wide; see FULL_COLLECTION_AFTER)."""
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, after)


class PipelineFailed(Exception, Generic[Batch]):
    """A batch failed: `committed` were stored before it was found out, `failed` (oldest first)
    left nothing behind and must be folded again. The error is the cause."""

    def __init__(self, error: Exception, *, committed: list[Batch], failed: list[Batch]) -> None:
        super().__init__(f"{len(failed)} batch(es) not stored: {error}")
        self.error, self.committed, self.failed = error, committed, failed


@dataclass
class _Committing(Generic[Batch]):
    batch: Batch
    prepared: dict[str, Prepared]  # by projection set name; none: folded in its own transaction
    task: asyncio.Task[None] | None = None
    # What each set's transaction committed, as it commits (a batch is one transaction per set).
    folded: list[tuple[ProjectionSet, Folded]] = field(default_factory=list)


class FoldPipeline(Generic[Batch]):
    """One consumer's batches, each folded while the one before commits (at most one in flight)."""

    def __init__(
        self,
        client: AsyncMongoClient[Document],
        db: Database,
        *,
        facts: FactsFollower,
        cache: WriteCache | None,
    ) -> None:
        self._client, self._db, self._facts, self._cache = client, db, facts, cache
        self._committing: _Committing[Batch] | None = None
        self.committed = 0  # batches committed
        self.written_ahead = 0  # of which every set's facts were written as folded ahead

    @property
    def in_flight(self) -> bool:
        """Is a batch committing (and its facts not yet in the index)?"""
        return self._committing is not None

    async def push(
        self,
        batch: Batch,
        envelopes: Sequence[Envelope[EventData]],
        *,
        targets: Sequence[ProjectionSet],
        in_order: Mapping[str, Spans] | None = None,
    ) -> list[Batch]:
        """Fold `envelopes` into `targets` while the batch pushed before commits, then start
        committing them. Returns the batches committed meanwhile (the one before, if any); their
        facts are in the cache and the index. Raises PipelineFailed if either fails.

        `in_order`, by target name: the batch's spans, for a set being rebuilt (fold_batch)."""
        committed: list[Batch] = []
        previous = self._committing  # stays in flight (for `close`) until settled
        if previous is not None and not previous.prepared:
            # Folded in its own transaction: what it writes is known once it has, so fold after it.
            await self._wait_for(previous, batch)
            await self._index(previous)
            committed, previous = [previous.batch], None
        try:
            prepared = {
                target.name: await prepare_batch(
                    self._db,
                    target=target,
                    envelopes=envelopes,
                    writer=self._facts.lease.writer,
                    cache=self._cache,
                    pending=previous.prepared[target.name].facts
                    if previous is not None and target.name in previous.prepared
                    else None,
                    unseen=partial(self._facts.unseen, target),
                )
                for target in targets
            }
            error = None
        except Exception as exc:  # after the batch before is settled: it may have committed
            prepared, error = {}, exc
        if previous is not None:
            await self._wait_for(previous, batch)
            committed.append(previous.batch)
            if not all(folded.prepared for _, folded in previous.folded):
                prepared = {}  # folded from facts the batch before did not write after all
        if error is None:
            self._start(_Committing(batch, prepared), envelopes, targets, in_order or {})
        if previous is not None:
            await self._index(previous)
        if error is not None:
            raise PipelineFailed(error, committed=committed, failed=[batch]) from error
        return committed

    async def flush(self) -> list[Batch]:
        """Wait for the batch in flight, if any; returns it once committed (PipelineFailed if not)."""
        previous, self._committing = self._committing, None
        if previous is None:
            return []
        try:
            await self._settle(previous)
        except Exception as exc:
            raise PipelineFailed(exc, committed=[], failed=[previous.batch]) from exc
        await self._index(previous)
        return [previous.batch]

    async def close(self) -> None:
        """Stop: the batch in flight is abandoned (its events are read again and skipped if stored)."""
        previous, self._committing = self._committing, None
        if previous is not None and previous.task is not None:
            previous.task.cancel()
            with suppress(BaseException):
                await previous.task

    def _start(
        self,
        committing: _Committing[Batch],
        envelopes: Sequence[Envelope[EventData]],
        targets: Sequence[ProjectionSet],
        in_order: Mapping[str, Spans],
    ) -> None:
        async def commit() -> None:
            for target in targets:
                folded = await fold_batch(
                    self._client,
                    self._db,
                    target=target,
                    envelopes=envelopes,
                    lease=self._facts.lease,
                    cache=self._cache,
                    prepared=committing.prepared.get(target.name),
                    in_order=in_order.get(target.name),
                )
                committing.folded.append((target, folded))

        committing.task = asyncio.create_task(commit())
        self._committing = committing

    async def _wait_for(self, previous: _Committing[Batch], batch: Batch) -> None:
        """Settle `previous`; if it failed, `batch` (folded on top of it, or to be) fails with it."""
        self._committing = None
        try:
            await self._settle(previous)
        except Exception as exc:
            raise PipelineFailed(exc, committed=[], failed=[previous.batch, batch]) from exc

    async def _settle(self, committing: _Committing[Batch]) -> None:
        assert committing.task is not None
        try:
            await committing.task
        except Exception:
            # A set committed before another failed: what it wrote is stored, so the index has it.
            await self._index(committing)
            raise
        self.committed += 1
        self.written_ahead += all(folded.prepared for _, folded in committing.folded)

    async def _index(self, committing: _Committing[Batch]) -> None:
        """Hand what the batch committed to the index, giving way to the transaction in flight."""
        for target, folded in committing.folded:
            for start in range(0, len(folded.facts), INDEX_TURN):
                self._facts.apply(target, folded.facts[start : start + INDEX_TURN])
                await asyncio.sleep(0)
