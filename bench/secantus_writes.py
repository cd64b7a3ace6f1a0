"""SecantusDB's CPU per document for the shapes of read and write the analytics fold could use,
each inside transactions, on a collection of referral facts: what one lookup, insert or
replacement costs the embedded database server, so the fold can choose between them.

    uv run --extra embedded python bench/secantus_writes.py                       # 200,000 facts, 10,000 a transaction
    uv run --extra embedded python bench/secantus_writes.py --facts 50000 --per-transaction 5000

Server CPU is read from /proc for the server process (user + system), so it barely moves with
the machine's other load; wall clock is printed beside it. Each shape runs three transactions on
documents picked at random (a fixed seed), the way a batch touches referrals.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

from analytics import cpu_seconds  # bench/analytics.py: this script's folder is on sys.path
from pymongo import AsyncMongoClient, ReplaceOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection

from signpost.platform.benchkit import scratch_mongodb

REPEATS = 3


def fact(n: int, version: int = 1) -> dict[str, Any]:
    """About the size and shape of a referral fact (fold.py): 850 bytes of BSON."""
    return {
        "_id": f"E06000022|ref-{n}",
        "tenant": "E06000022",
        "referral_id": f"ref-{n}",
        "events": [f"01a24d0a-773b-7e7c-b9de-{n:06d}{k:06d}" for k in range(4)],
        "submitted": {
            "locality": "locality-9",
            "setting": "setting-116",
            "needs": ["SEMH", "ASD"],
            "areas": ["social_emotional_mental_health"],
            "level": "universal",
            "child_ref": "c" * 64,
            "profile": {"communication_and_interaction": 3, "family_and_home": 2},
        },
        "routed_at": None,
        "unmatched": False,
        "escalated": None,
        "withdrawn_at": None,
        "offers": {"prov-01": {"sector": "health", "organisation": "org-1"}},
        "writer": "0123456789abcdef",
        "version": version,
    }


Shape = Callable[[AsyncCollection[dict[str, Any]], AsyncClientSession, list[int]], Awaitable[None]]


async def find_in(
    collection: AsyncCollection[dict[str, Any]], session: AsyncClientSession, ids: list[int], *, chunk: int
) -> None:
    for start in range(0, len(ids), chunk):
        keys = [f"E06000022|ref-{n}" for n in ids[start : start + chunk]]
        async for _ in collection.find({"_id": {"$in": keys}}, session=session):
            pass


async def replace(
    collection: AsyncCollection[dict[str, Any]], session: AsyncClientSession, ids: list[int]
) -> None:
    await collection.bulk_write(
        [ReplaceOne({"_id": f"E06000022|ref-{n}"}, fact(n, version=2)) for n in ids],
        ordered=False,
        session=session,
    )


async def delete_and_insert(
    collection: AsyncCollection[dict[str, Any]], session: AsyncClientSession, ids: list[int]
) -> None:
    for start in range(0, len(ids), 20):
        keys = [f"E06000022|ref-{n}" for n in ids[start : start + 20]]
        await collection.delete_many({"_id": {"$in": keys}}, session=session)
    await collection.insert_many([fact(n, version=3) for n in ids], ordered=False, session=session)


async def run(url: str, server_pid: int, facts: int, per_transaction: int) -> None:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(url)
    collection = client.bench_writes.facts
    for start in range(0, facts, 10_000):
        await collection.insert_many([fact(n) for n in range(start, min(facts, start + 10_000))])
    fresh = iter(range(facts, facts + REPEATS * per_transaction * 2))

    async def insert(
        collection: AsyncCollection[dict[str, Any]], session: AsyncClientSession, ids: list[int]
    ) -> None:
        await collection.insert_many([fact(next(fresh)) for _ in ids], ordered=False, session=session)

    shapes: dict[str, Shape] = {
        "insert": insert,
        "replace by _id": replace,
        "delete ($in of 20) + insert": delete_and_insert,
        "find, $in of 20": lambda c, s, ids: find_in(c, s, ids, chunk=20),
        "find, $in of 100": lambda c, s, ids: find_in(c, s, ids, chunk=100),
        "find, $in of 1,000": lambda c, s, ids: find_in(c, s, ids, chunk=1000),
    }
    print(f"{facts:,} facts, {per_transaction:,} documents a transaction, {REPEATS} transactions each")
    print(f"{'shape':<30} {'server CPU ms/doc':>18} {'wall ms/doc':>12}")
    for seed, (name, shape) in enumerate(shapes.items()):
        began, server = time.perf_counter(), cpu_seconds(server_pid)
        for repeat in range(REPEATS):
            ids = random.Random(seed * REPEATS + repeat).sample(range(facts), per_transaction)
            async with client.start_session() as session, await session.start_transaction():
                await shape(collection, session, ids)
        documents = REPEATS * per_transaction
        server_ms = (cpu_seconds(server_pid) - server) * 1000 / documents
        wall_ms = (time.perf_counter() - began) * 1000 / documents
        print(f"{name:<30} {server_ms:>18.3f} {wall_ms:>12.3f}")
    await client.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--facts", type=int, default=200_000)
    parser.add_argument("--per-transaction", type=int, default=10_000)
    args = parser.parse_args()
    if args.per_transaction > args.facts:
        parser.error("--per-transaction must not exceed --facts")
    with scratch_mongodb() as server:
        asyncio.run(run(server.url, server.process.pid, args.facts, args.per_transaction))


if __name__ == "__main__":
    main()
