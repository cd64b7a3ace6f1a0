"""Fold a batch of events into a projection set, in one MongoDB transaction.

Per batch: read the facts the batch touches (from this process's cache of what it
wrote, else in a few queries), fold every event into them in memory (skipping event
ids a fact already holds), then write the facts with a few bulk writes (re-referrals
are worked out across facts by the index, not here). The idempotency record of each
referral event is its id in the fact, written in the same write as what it changed.

Each write raises the document's `version`, so copies elsewhere (the index, the cache)
can tell newer from older. While another process holds a writer's lease (writers.py),
each replacement is also conditional on the version read, so a stale cached copy fails
the batch instead of overwriting what someone else wrote; alone, a writer's copies are
current by construction, and a copy read in the transaction is guarded by the
transaction itself (a concurrent write to it aborts one of the two).

Into a set being rebuilt, a live batch is folded only in log order (`in_order`, sets.py):
once the set holds every earlier record of the batch's partitions, advancing the set's
positions past the batch in the same transaction.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from pymongo import ReplaceOne
from pymongo.asynchronous.mongo_client import AsyncMongoClient
from pymongo.errors import BulkWriteError
from signpost.analytics.projections.cache import WriteCache
from signpost.analytics.projections.facts import REFERRAL_EVENTS, apply_event, fact_id, stored_moment
from signpost.analytics.projections.sets import (
    ProjectionSet,
    Spans,
    abandon,
    advance_positions,
    positions_behind,
    read_pointer,
)
from signpost.analytics.projections.writers import WriterLease
from signpost.shared.events import Envelope, EventData, ProvisionChangedV1, SettingChangedV1
from signpost.shared.logging import get_logger
from signpost.shared.mongo import (
    Database,
    Document,
    Session,
    find_by_ids,
    in_transaction,
    lost_a_race_to_insert,
)

log = get_logger(__name__)

# How long a live batch waits for the set being rebuilt to get to where the batch starts (`in_order`).
# The replay hands the set over to the live consumer only once it has caught up with the log, and
# then folds what is left of it, so this is a batch or two; past it, the rebuild is given up (see
# `_wait_for_replay`) rather than stalling the live consumer.
CATCH_UP_WAIT_S = 60.0
CATCH_UP_POLL_S = 0.05


async def fold_batch(
    client: AsyncMongoClient[Document],
    db: Database,
    *,
    target: ProjectionSet,
    envelopes: Sequence[Envelope[EventData]],
    lease: WriterLease,
    cache: WriteCache | None = None,
    prepared: Prepared | None = None,
    in_order: Spans | None = None,
) -> Folded:
    """Fold `envelopes` into `target`; returns the facts written and how many things changed.

    Written under `lease`, which names this process in what it writes (see writers.py); `prepared`
    is the batch's facts folded ahead from copies (`prepare_batch`), written if still safe.

    With `in_order` (the batch's span of each partition of an ordered topic), the batch is folded
    only once `target` holds every record before those spans, waiting for the replay filling it to
    get there, and the set's positions move past them in the same transaction (sets.py). If the set
    stops being built meanwhile (abandoned), nothing is folded into it."""
    while True:
        if in_order and not await _wait_for_replay(db, target, in_order):
            return Folded(facts=[], changed=0, written={})
        try:
            return await _fold_batch(
                client,
                db,
                target=target,
                envelopes=envelopes,
                lease=lease,
                cache=cache,
                prepared=prepared,
                in_order=in_order,
            )
        except _Behind:
            continue  # the set changed under the check before the transaction (dropped?): look again


async def _fold_batch(
    client: AsyncMongoClient[Document],
    db: Database,
    *,
    target: ProjectionSet,
    envelopes: Sequence[Envelope[EventData]],
    lease: WriterLease,
    cache: WriteCache | None,
    prepared: Prepared | None,
    in_order: Spans | None,
) -> Folded:
    # A stale copy (cached, or read just before another writer committed): fold again from MongoDB.
    for attempt, (reading, ahead) in enumerate(((cache, prepared), (None, None), (None, None))):

        async def write(
            session: Session, reading: WriteCache | None = reading, ahead: Prepared | None = ahead
        ) -> Folded:
            if in_order and await positions_behind(db, target, in_order, session=session):
                raise _Behind(target.name)
            others = await lease.look(session=session)
            if reading is not None and reading.since is not None and not lease.alone_since(reading.since):
                reading.clear()  # copies from before this writer was alone: others may have changed them
            if ahead is not None and not others and not lease.alone_since(ahead.since):
                ahead = None  # folded from copies someone else may have changed since: fold again
            batch = _Batch(db=db, session=session, cache=reading, writer=lease.writer, conditional=others)
            folded = await _fold(batch, target=target, envelopes=envelopes, prepared=ahead)
            if in_order:
                await advance_positions(db, target, in_order, session=session)
            await lease.ensure()  # a slow transaction still commits while the others read its writes
            return folded

        await lease.ensure()
        try:
            folded = await in_transaction(client, write)
        except StaleCopy:
            if attempt == 2:
                raise
            if cache is not None:
                cache.clear()
            continue
        if cache is not None:
            for collection, documents in folded.written.items():
                cache.put_many(collection, documents)
        return folded
    raise AssertionError("unreachable: the last attempt returns or raises")


class NotCaughtUp(RuntimeError):
    """The set has not been folded up to where a batch starts, and cannot be given up: it is active."""


class _Behind(RuntimeError):
    """In the transaction: the set has not been folded up to where the batch starts."""


async def _wait_for_replay(db: Database, target: ProjectionSet, spans: Spans) -> bool:
    """Until `target` holds every record before `spans`; False if it is no longer being built (or
    in use) and so takes nothing more. A set that does not get there within CATCH_UP_WAIT_S is
    abandoned: the live consumer folds into the active set alone again, and that rebuild swaps
    nothing in (its swap finds the pointer changed)."""
    deadline = time.monotonic() + CATCH_UP_WAIT_S
    while behind := await positions_behind(db, target, spans):
        pointer = await read_pointer(db)
        if target not in (pointer.active, pointer.building):
            return False
        if time.monotonic() > deadline:
            if not pointer.in_order(
                target
            ):  # swapped in meanwhile: the batch fails, read again from the pointer
                raise NotCaughtUp(f"{target.name} has not been folded up to {behind}")
            if await abandon(db, target.name):
                log.warning(
                    "the set being rebuilt did not catch up with the live consumer; rebuild abandoned",
                    projection_set=target.name,
                    partitions=[f"{topic}[{number}]" for topic, number in behind],
                    waited_s=CATCH_UP_WAIT_S,
                )
            return False
        await asyncio.sleep(CATCH_UP_POLL_S)
    return True


# Events folded between two turns of the event loop: a batch folded ahead gives way to the
# transaction in flight every few milliseconds, so that transaction's next command is not held up.
FOLD_TURN = 500


async def prepare_batch(
    db: Database,
    *,
    target: ProjectionSet,
    envelopes: Sequence[Envelope[EventData]],
    writer: str,
    cache: WriteCache | None = None,
    pending: Mapping[str, Document] | None = None,
    unseen: Callable[[Iterable[str]], set[str]] | None = None,
) -> Prepared:
    """Fold the batch's referral events in memory, outside any transaction, ready to be written by
    `fold_batch` as `writer`. Each fact is taken from `pending` (by id: what the batch before wrote,
    its transaction still under way), else the cache, else MongoDB as committed now, unless
    `unseen` tells it does not exist yet (a new referral's fact: MongoDB need not be asked, which
    cost it a third or more of writing the fact; if it does exist after all, its insert fails the
    batch as a stale copy, folded again from MongoDB)."""
    since = time.monotonic()
    if cache is not None and cache.since is not None:
        since = min(since, cache.since)
    ids = _fact_ids(envelopes)
    found = {key: pending[key] for key in ids if key in pending} if pending else {}
    if cache is not None:
        found |= cache.get_many(target.facts, [key for key in ids if key not in found])
    missing = [key for key in ids if key not in found]
    if unseen is not None:
        new = unseen(missing)
        missing = [key for key in missing if key not in new]
    found |= await find_by_ids(db[target.facts], missing)
    changed = await _apply_events(found, envelopes)
    read = {key: found[key] for key in changed if key in found}
    return Prepared(since=since, read=read, facts=_stamp(changed, read=read, writer=writer))


@dataclass(frozen=True)
class Prepared:
    """A batch's facts folded ahead of its transaction, from copies current at `since`
    (time.monotonic()) if no other writer has written since."""

    since: float
    read: dict[str, Document]  # the copies the changed facts were folded from (new facts: none)
    facts: dict[str, Document]  # as they are to be written, by id


@dataclass(frozen=True)
class Folded:
    facts: list[Document]  # as written: for the in-memory index of this process
    changed: int  # facts and catalogue entries changed (a redelivery changes nothing)
    written: dict[str, list[Document]]  # by collection: what the cache may keep
    prepared: bool = False  # the facts written are those folded ahead, as they were


# Fields saying how often and by which process a document was written, not what it holds.
BOOKKEEPING = frozenset({"version", "writer"})


class StaleCopy(RuntimeError):
    """A document changed since the copy a write was based on."""


@dataclass
class _Batch:
    """One transaction's reads and writes, and what it wrote."""

    db: Database
    session: Session
    cache: WriteCache | None
    writer: str
    conditional: bool  # replacements check the version read (another writer may change documents)
    written: dict[str, list[Document]] = field(default_factory=dict)

    async def read(self, collection: str, ids: list[str]) -> dict[str, Document]:
        found = self.cache.get_many(collection, ids) if self.cache is not None else {}
        missing = [key for key in ids if key not in found]
        return found | await find_by_ids(self.db[collection], missing, session=self.session)

    async def save(
        self, collection: str, documents: dict[str, Document], *, read: dict[str, Document]
    ) -> list[Document]:
        """Replace what was read, if unchanged since; insert the rest (upserts are slower)."""
        return await self.write(collection, _stamp(documents, read=read, writer=self.writer), read=read)

    async def write(
        self, collection: str, saved: dict[str, Document], *, read: dict[str, Document]
    ) -> list[Document]:
        """Documents stamped already (`_stamp`) from the versions in `read`."""
        versions = {key: _version(document) for key, document in read.items()}
        # An old document without a version matches `None` (missing), as version 0.
        replacements = [
            ReplaceOne(
                {"_id": key, "version": versions[key] or None} if self.conditional else {"_id": key}, document
            )
            for key, document in saved.items()
            if key in versions
        ]
        inserts = [document for key, document in saved.items() if key not in versions]
        if replacements:
            result = await self.db[collection].bulk_write(replacements, ordered=False, session=self.session)
            if result.matched_count != len(replacements):
                raise StaleCopy(
                    f"{len(replacements) - result.matched_count} of {collection} changed meanwhile"
                )
        if inserts:
            try:
                await self.db[collection].insert_many(inserts, ordered=False, session=self.session)
            except BulkWriteError as exc:
                if not lost_a_race_to_insert(exc):
                    raise
                raise StaleCopy(f"{collection} gained a document meanwhile") from exc
        self.written.setdefault(collection, []).extend(saved.values())
        return list(saved.values())


async def _fold(
    batch: _Batch,
    *,
    target: ProjectionSet,
    envelopes: Sequence[Envelope[EventData]],
    prepared: Prepared | None,
) -> Folded:
    if prepared is None:
        stored = await batch.read(target.facts, _fact_ids(envelopes))
        changed = await _apply_events(stored, envelopes)
        facts = await batch.save(target.facts, changed, read=stored)
    else:
        changed = prepared.facts
        facts = await batch.write(target.facts, prepared.facts, read=prepared.read)
    catalogue = await _fold_catalogue(batch.db, target=target, envelopes=envelopes, session=batch.session)
    tenants = {envelope.tenant for envelope in envelopes}
    known = await batch.read(target.tenants, list(tenants))
    await batch.save(target.tenants, {t: {"_id": t} for t in tenants - known.keys()}, read={})
    return Folded(
        facts=facts, changed=len(changed) + catalogue, written=batch.written, prepared=prepared is not None
    )


def _fact_ids(envelopes: Iterable[Envelope[EventData]]) -> list[str]:
    return list(
        {fact_id(e.tenant, e.data.referral_id) for e in envelopes if isinstance(e.data, REFERRAL_EVENTS)}
    )


async def _apply_events(
    stored: Mapping[str, Document], envelopes: Sequence[Envelope[EventData]]
) -> dict[str, Document]:
    """The facts the referral events change, folded from `stored` (which is left as it was)."""
    current: dict[str, Document] = dict(stored)
    changed: set[str] = set()
    for position, envelope in enumerate(envelopes, start=1):
        if isinstance(envelope.data, REFERRAL_EVENTS):
            key = fact_id(envelope.tenant, envelope.data.referral_id)
            after = apply_event(current.get(key), envelope)
            if after is not None:
                current[key] = after
                changed.add(key)
        if position % FOLD_TURN == 0:
            await asyncio.sleep(0)
    return {key: current[key] for key in changed}


def _stamp(
    documents: Mapping[str, Document], *, read: Mapping[str, Document], writer: str
) -> dict[str, Document]:
    """As they are written: marked with their writer, and one version on from the copy read."""
    return {
        key: {**document, "writer": writer, "version": _version(read.get(key)) + 1}
        for key, document in documents.items()
    }


def _version(document: Document | None) -> int:
    return int(document.get("version", 0)) if document is not None else 0


async def _fold_catalogue(
    db: Database, *, target: ProjectionSet, envelopes: Sequence[Envelope[EventData]], session: Session
) -> int:
    """Provisions and settings: the newest state of each wins, so replays and reordering change nothing."""
    latest: dict[tuple[str, str], tuple[datetime, Document]] = {}
    for envelope in envelopes:
        data = envelope.data
        if isinstance(data, ProvisionChangedV1):
            document = {
                "tenant": envelope.tenant,
                "name": str(data.provision.get("name", data.provision_id)),
                "sector": data.provision.get("sector"),
                "organisation": data.provision.get("organisation"),
                "waiting_weeks": data.provision.get("waiting_weeks"),
                "active": data.change != "retired" and bool(data.provision.get("active", True)),
            }
            entry = (target.provisions, f"{envelope.tenant}|{data.provision_id}")
            stamp = stored_moment(data.changed_at)
        elif isinstance(data, SettingChangedV1):
            document = {
                "tenant": envelope.tenant,
                "setting_id": data.setting_id,
                "name": data.name,
                "locality": data.locality,
                "phase": data.phase,
                "open": data.change != "closed",
            }
            entry = (target.settings_register, f"{envelope.tenant}|{data.setting_id}")
            stamp = stored_moment(data.changed_at)
        else:
            continue
        if entry not in latest or latest[entry][0] <= stamp:
            latest[entry] = (stamp, {**document, "changed_at": stamp})
    for (collection, key), (stamp, document) in latest.items():
        existing = await db[collection].find_one({"_id": key}, {"changed_at": 1}, session=session)
        if existing is None or existing["changed_at"] <= stamp:
            await db[collection].replace_one({"_id": key}, document, upsert=True, session=session)
    return len(latest)
