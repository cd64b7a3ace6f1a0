"""Deleting what is past its retention: a chunk of ids at a time, on a timer.

No TTL indexes: SecantusDB sweeps them every minute by reading every document of the
collection under its storage-wide lock, which stalls the whole platform for seconds at a
time, longer as the collection grows. Instead each service prunes its own collections
here, walking `_id` in order so no single delete holds a collection long. A prune only
deletes what its query still matches at the moment of the delete, so replicas pruning the
same collection at once delete nothing twice and nothing they should not.

On SecantusDB a query on an `_id` range scans the whole collection, whatever else it names (its
`_id` index serves equality only), under the server's storage-wide lock: a large collection is
pruned by an indexed time field instead (the outbox's `created_at`, the audit trail's `at`).
The others read more than they delete, once a chunk: webhook deliveries (every finished one:
they have no time field an index could range over once finished), Idempotency-Keys by a field
no index has (an index would cost every submission), and the daily erasure's walk.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

from pymongo import ASCENDING
from signpost.shared.errors import describe_error
from signpost.shared.logging import get_logger
from signpost.shared.mongo import Collection, Database, Document, Session, in_transaction

log = get_logger(__name__)

PRUNE_INTERVAL_S = 600.0
# The first pass comes soon after start-up, so a process restarted more often than the interval
# still prunes; not at once, so it does not compete with the start-up's own catch-up.
PRUNE_FIRST_DELAY_S = 60.0
PRUNE_CHUNK = 100  # ids per delete: SecantusDB tests each document against the whole `$in` list

# Given a chunk of ids the query matched, those to keep after all (read in the delete's transaction).
Spare = Callable[[Session, list[Any]], Awaitable[set[Any]]]


async def prune_in_chunks(db: Database, name: str, query: Document, *, spare: Spare | None = None) -> int:
    """Delete the documents of `db[name]` that `query` matches, PRUNE_CHUNK ids at a time in id
    order, each chunk in a transaction of its own that tests `query` again; returns how many went."""

    async def delete(session: Session, ids: list[Any]) -> int:
        kept = await spare(session, ids) if spare else set()
        doomed = [document_id for document_id in ids if document_id not in kept]
        # The ids first, and the query's other fields tested again: SecantusDB looks a filter up by
        # its first indexed field, and the ids are point lookups where a time range may be a
        # collection's worth. The query's own `_id` range is left out: ids never change.
        again = {field: clause for field, clause in query.items() if field != "_id"}
        return (await db[name].delete_many({"_id": {"$in": doomed}, **again}, session=session)).deleted_count

    if spare is not None:  # what it spares still matches: walk on past it
        return await in_chunks(db, name, query, delete)
    # What a chunk deleted matches no more, so each chunk reads from the first match again, with
    # no `_id` range beside the query's indexed fields (on SecantusDB that range scans the whole
    # collection). A chunk that deleted nothing (changed meanwhile) ends the pass.
    done = 0
    while ids := await ids_after(db[name], None, query):
        deleted = await in_transaction(db.client, partial(delete, ids=ids))
        if not deleted:
            break
        done += deleted
    return done


async def in_chunks(
    db: Database, name: str, query: Document, work: Callable[[Session, list[Any]], Awaitable[int]]
) -> int:
    """Run `work` on the ids of the documents of `db[name]` that `query` matches, PRUNE_CHUNK at a
    time in id order, each chunk in a transaction of its own (`work` tests `query` again in it, as
    a document may have changed since); returns the sum of what `work` returned.

    In a transaction because outside one SecantusDB retries a write that conflicts with a
    transaction in flight while holding the collection (see `OutboxRelay._mark`)."""
    done, after = 0, None
    while ids := await ids_after(db[name], after, query):
        after = ids[-1]

        async def chunk(session: Session, ids: list[Any] = ids) -> int:
            return await work(session, ids)

        done += await in_transaction(db.client, chunk)
    return done


async def ids_after(collection: Collection, after: Any, query: Document) -> list[Any]:
    """The next PRUNE_CHUNK ids past `after` (None: from the first) of the documents `query`
    matches, in id order."""
    ids = {**query.get("_id", {}), **({"$gt": after} if after is not None else {})}
    found = collection.find({**query, **({"_id": ids} if ids else {})}, {"_id": 1})
    return [document["_id"] async for document in found.sort("_id", ASCENDING).limit(PRUNE_CHUNK)]


async def keep_pruning(
    what: str, prune: Callable[[], Awaitable[int]], *, interval_s: float | None = None
) -> None:
    """Run `prune` soon after start-up and every `interval_s` (PRUNE_INTERVAL_S) after that, for as
    long as the service runs; `what` names what it deletes, in the logs."""
    await asyncio.sleep(PRUNE_FIRST_DELAY_S)
    while True:
        try:
            if removed := await prune():
                log.info("past retention, deleted", what=what, count=removed)
        except Exception as exc:  # MongoDB away: they go next time
            log.warning(
                "retention could not delete yet; retrying later", what=what, error=describe_error(exc)
            )
        await asyncio.sleep(PRUNE_INTERVAL_S if interval_s is None else interval_s)
