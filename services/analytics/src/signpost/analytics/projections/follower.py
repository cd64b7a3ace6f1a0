"""Keep an in-memory FactIndex of each projection set in use, current with MongoDB.

Every analytics process answers pulse queries from its own index, while the consumer
group spreads the folding over the processes: so each index follows its set's facts
through a MongoDB change stream (opened before the initial load, so nothing written
during the load is missed), and the fold also hands its own writes over directly,
so a process reads what it has just folded. A fact's `version` makes the two paths
agree whichever arrives first. The stream is read only while another process holds a
writer's lease (writers.py), and paused where it is otherwise. The sets followed are
those the pointer names: the active one, and the one a rebuild is filling, so a swap
finds it loaded.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from contextlib import suppress
from dataclasses import dataclass, field

from pymongo.errors import PyMongoError
from signpost.analytics.projections.index import FactIndex
from signpost.analytics.projections.sets import Pointer, ProjectionSet, read_pointer
from signpost.analytics.projections.writers import WriterLease
from signpost.shared.errors import describe_error
from signpost.shared.logging import get_logger
from signpost.shared.mongo import Database, Document
from signpost.shared.retries import backoff_delay

log = get_logger(__name__)

POINTER_POLL_S = 1.0


class IndexLoading(RuntimeError):
    """The index of a projection set is still being read from MongoDB."""

    def __init__(self, name: str, loaded: int) -> None:
        super().__init__(f"projection set {name!r} is loading ({loaded:,} referrals read so far)")


@dataclass
class _Followed:
    index: FactIndex = field(default_factory=FactIndex)
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    # While a loaded index is read again into a fresh one: the facts this process handed over
    # meanwhile, which the scan may have passed before they were written and the change stream
    # leaves out, so they go into the fresh index before it is served.
    handed_over: list[Document] | None = None


class FactsFollower:
    def __init__(
        self,
        db: Database,
        *,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 10.0,
        lease: WriterLease | None = None,
    ) -> None:
        # What this process's fold writes under: its change stream leaves out the facts marked with
        # the lease's writer, since the fold hands them over itself.
        self.lease = lease or WriterLease(db)
        self.writer = self.lease.writer
        self.pointer: Pointer | None = None  # as last read, every POINTER_POLL_S
        self._db = db
        self._followed: dict[str, _Followed] = {}
        self._backoff = (backoff_initial_s, backoff_max_s)
        self._others_writing = asyncio.Event()

    async def run(self) -> None:
        """Follow the sets the pointer names until cancelled."""
        try:
            while True:
                with suppress(PyMongoError):  # MongoDB away: keep serving what is loaded
                    self.pointer = await read_pointer(self._db)
                    self._follow({target.name for target in self.pointer.in_use()})
                    if await self.lease.look():
                        self._others_writing.set()
                    else:
                        self._others_writing.clear()
                await asyncio.sleep(POINTER_POLL_S)
        finally:
            for followed in self._followed.values():
                if followed.task is not None:
                    followed.task.cancel()
            with suppress(PyMongoError):
                await self.lease.release()

    @property
    def reading_changes(self) -> bool:
        """Is the change stream being read (another process holds a writer's lease)?"""
        return self._others_writing.is_set()

    async def index(self, target: ProjectionSet, *, wait_s: float) -> FactIndex:
        """The set's index once loaded; IndexLoading if that takes longer than `wait_s`."""
        followed = self._follow_one(target.name)
        with suppress(TimeoutError):
            async with asyncio.timeout(wait_s):
                await followed.ready.wait()
        if not followed.ready.is_set():
            raise IndexLoading(target.name, len(followed.index))
        return followed.index

    def readiness(self) -> str:
        """For /readyz: "ok" once every set the pointer names is loaded."""
        loading = [name for name, followed in self._followed.items() if not followed.ready.is_set()]
        if not self._followed:
            return "loading: the projection sets are not known yet"
        return f"loading: {', '.join(sorted(loading))}" if loading else "ok"

    def unseen(self, target: ProjectionSet, fact_ids: Iterable[str]) -> set[str]:
        """Of `fact_ids`, those not in this process's index of `target`, while it is loaded and no
        other process writes: facts that do not exist yet, as far as this process can tell. Only a
        hint: the fold inserts such facts, and the unique `_id` turns a wrong guess into a retry."""
        followed = self._followed.get(target.name)
        if followed is None or not followed.ready.is_set() or self.reading_changes:
            return set()
        return {key for key in fact_ids if key not in followed.index}

    def apply(self, target: ProjectionSet, facts: Iterable[Document]) -> None:
        """Facts this process has just written (committed) into `target`."""
        followed = self._followed.get(target.name)
        if followed is not None:
            for fact in facts:
                followed.index.upsert(fact)
                if followed.handed_over is not None:
                    followed.handed_over.append(fact)

    def _follow(self, names: set[str]) -> None:
        for name in names:
            self._follow_one(name)
        for name in self._followed.keys() - names:
            task = self._followed.pop(name).task
            if task is not None:
                task.cancel()

    def _follow_one(self, name: str) -> _Followed:
        followed = self._followed.get(name)
        if followed is None:
            followed = self._followed[name] = _Followed()
            followed.task = asyncio.create_task(self._keep_current(ProjectionSet(name), followed))
        return followed

    async def _keep_current(self, target: ProjectionSet, followed: _Followed) -> None:
        attempt = 0
        while True:
            try:
                await self._load_and_watch(target, followed)
                attempt, error = 0, "the change stream ended (its collection was dropped?)"
            except Exception as exc:  # a lost stream or a fact it cannot count: reload rather than go stale
                attempt, error = attempt + 1, describe_error(exc)
            delay = backoff_delay(max(attempt, 1), initial_s=self._backoff[0], max_s=self._backoff[1])
            log.warning(
                "reloading a projection index", projection_set=target.name, retry_in_s=delay, error=error
            )
            await asyncio.sleep(delay)

    async def _load_and_watch(self, target: ProjectionSet, followed: _Followed) -> None:
        facts = self._db[target.facts]
        others = [{"$match": {"fullDocument.writer": {"$ne": self.writer}}}]
        async with await facts.watch(others, full_document="updateLookup") as changes:
            index = await self._load(target, followed)
            followed.index = index
            followed.ready.set()
            log.info("projection index loaded", projection_set=target.name, referrals=len(index))
            while changes.alive:
                await self._others_writing.wait()  # alone: the stream waits where it is
                change = await changes.try_next()
                written = change.get("fullDocument") if change is not None else None
                if written is not None:
                    index.upsert(written)

    async def _load(self, target: ProjectionSet, followed: _Followed) -> FactIndex:
        if not followed.ready.is_set():
            index = followed.index  # what the fold hands over meanwhile goes straight in
        else:  # a fresh index, so the one being served stays whole until this one is
            index, followed.handed_over = FactIndex(), []
        try:
            async for fact in self._db[target.facts].find({}):
                index.upsert(fact)
            for fact in followed.handed_over or ():
                index.upsert(fact)  # counts only if newer than the copy the scan read (its version)
        finally:
            followed.handed_over = None
        return index
