"""MongoDB wiring through PyMongo's async API, and the idempotent-consumer record."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from pymongo import AsyncMongoClient, IndexModel, monitoring
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError, OperationFailure, PyMongoError
from signpost.shared.settings import Settings

Document = dict[str, Any]
Database = AsyncDatabase[Document]
Collection = AsyncCollection[Document]
Session = AsyncClientSession

PROCESSED_EVENTS = "processed_events"

T = TypeVar("T")


def create_client(
    settings: Settings, *, listeners: Sequence[monitoring.CommandListener] = ()
) -> AsyncMongoClient[Document]:
    _, url = settings.require_servers()
    return AsyncMongoClient(
        url,
        tz_aware=True,
        serverSelectionTimeoutMS=5000,
        appname="signpost",
        event_listeners=list(listeners),
    )


@dataclass(frozen=True)
class IndexPlan:
    """The indexes one service needs, created idempotently at start-up, and the names of those it
    no longer wants, dropped where an earlier version made them."""

    indexes: Mapping[str, Sequence[IndexModel]] = field(default_factory=dict)
    retired: Mapping[str, Sequence[str]] = field(default_factory=dict)

    def merged(self, other: IndexPlan) -> IndexPlan:
        """Both plans, collection by collection."""
        return IndexPlan(
            {
                name: [*self.indexes.get(name, []), *other.indexes.get(name, [])]
                for name in {*self.indexes, *other.indexes}
            },
            retired={
                name: [*self.retired.get(name, []), *other.retired.get(name, [])]
                for name in {*self.retired, *other.retired}
            },
        )

    async def apply(self, db: Database) -> None:
        for collection, names in self.retired.items():
            present = {index["name"] async for index in await db[collection].list_indexes()}
            for name in set(names) & present:
                await drop_index_if_present(db[collection], name)
        for collection, models in self.indexes.items():
            if models:
                await db[collection].create_indexes(list(models))


INDEX_NOT_FOUND = 27


async def drop_index_if_present(collection: Collection, name: str) -> None:
    """Drop an index another replica (or `migrate`) may be dropping at the same moment."""
    try:
        await collection.drop_index(name)
    except OperationFailure as exc:
        if exc.code != INDEX_NOT_FOUND:
            raise  # else another replica dropped it first


async def mark_processed(db: Database, *, event_id: str, session: Session) -> bool:
    """Record that this consumer handled `event_id`, inside the caller's transaction.

    Returns False when it was handled before: the caller then changes nothing, which
    makes at-least-once delivery effectively-once.
    """
    # Look before inserting: a duplicate-key error would abort the whole transaction.
    # Two concurrent deliveries both passing this check collide on the insert, and
    # the loser is redelivered and skipped here.
    if await db[PROCESSED_EVENTS].find_one({"_id": event_id}, {"_id": 1}, session=session):
        return False
    await db[PROCESSED_EVENTS].insert_one(
        {"_id": event_id, "processed_at": datetime.now(UTC)}, session=session
    )
    return True


async def mark_processed_many(db: Database, *, event_ids: Sequence[str], session: Session) -> set[str]:
    """`mark_processed` for a batch in two round trips: the ids handled now for the first time
    (an id twice in the batch counts once)."""
    seen = await find_by_ids(db[PROCESSED_EVENTS], list(event_ids), session=session, projection={"_id": 1})
    fresh = [event_id for event_id in dict.fromkeys(event_ids) if event_id not in seen]
    if fresh:
        now = datetime.now(UTC)
        await db[PROCESSED_EVENTS].insert_many(
            [{"_id": event_id, "processed_at": now} for event_id in fresh], session=session
        )
    return set(fresh)


# Ids per query of `find_by_ids`. SecantusDB tests each document against the whole `$in` list: its
# CPU per document found was 0.12 ms for a list of 20 ids, 0.18 for 100, 1.04 for 1,000
# (bench/secantus_writes.py). For MongoDB the extra round trips of a long list are cheap.
FIND_CHUNK = 20


def in_area(document: Document | None, tenant: str) -> bool:
    """Whether a document found by id belongs to `tenant`: tested on the document, as `find_by_ids`
    explains, rather than beside the id in the query."""
    return document is not None and document.get("tenant") == tenant


async def find_by_ids(
    collection: Collection,
    ids: Sequence[str],
    *,
    session: Session | None = None,
    projection: Mapping[str, Any] | None = None,
) -> dict[str, Document]:
    """The documents with these ids, by id: one query per FIND_CHUNK ids, none when there are none.
    Only `_id` in the query: any other field beside it multiplied SecantusDB's CPU per referral by
    about three in `bench/e2e.py --quick` (with the tenant added to intake's consumer's query)."""
    unique = list(dict.fromkeys(ids))
    found: dict[str, Document] = {}
    for start in range(0, len(unique), FIND_CHUNK):
        chunk = {"_id": {"$in": unique[start : start + FIND_CHUNK]}}
        async for document in collection.find(chunk, projection, session=session):
            found[document["_id"]] = document
    return found


async def in_transaction(client: AsyncMongoClient[Document], work: Callable[[Session], Awaitable[T]]) -> T:
    """Run `work` in one transaction, retried by the driver on transient errors."""
    async with client.start_session() as session:
        return await session.with_transaction(work)


DUPLICATE_KEY = 11000


def lost_a_race_to_insert(exc: PyMongoError) -> bool:
    """Whether a write failed only because another writer inserted the same key first: a single
    insert raises DuplicateKeyError, an `insert_many` a BulkWriteError whose errors say so."""
    if isinstance(exc, DuplicateKeyError):
        return True
    errors = exc.details.get("writeErrors", []) if isinstance(exc, BulkWriteError) else []
    return bool(errors) and all(error.get("code") == DUPLICATE_KEY for error in errors)
