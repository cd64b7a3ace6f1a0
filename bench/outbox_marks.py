"""SecantusDB's CPU per outbox event, staged and then marked published, two ways: the outbox's own
(shared/outbox.py: the event inserted whole, its id into `outbox_pending`; marking deletes the id),
and the way it was before (one document per event with a `published_at` field and an index on it;
marking updates the event in place).

    uv run --extra embedded python bench/outbox_marks.py                  # 6,000 events each way
    uv run --extra embedded python bench/outbox_marks.py --events 20000 --kept 100000

Each way runs on a collection already holding `--kept` published events (the week the outbox
keeps), stages events ten to a transaction as a busy service does, then marks them twenty to a
transaction as the relay does. Server CPU is read from /proc for the server process, so it barely
moves with the machine's other load; the two ways alternate, twice each.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from analytics import cpu_seconds  # bench/analytics.py: this script's folder is on sys.path
from pymongo import AsyncMongoClient, IndexModel
from signpost.shared.events import Envelope, EventData
from signpost.shared.mongo import Database, Session, in_transaction
from signpost.shared.outbox import MARK_CHUNK, OUTBOX, PENDING, outbox_document, stage_events
from signpost.shared.vocabulary import NeedCode

from signpost.platform.benchkit import scratch_mongodb
from signpost.platform.lifecycles import ReferralEvents

STAGED_TOGETHER = 10  # events a transaction stages: a busy intake's group commit
ROUNDS = 2
TOPIC = "referrals"

Stage = Callable[[Database, Sequence[Envelope[EventData]], Session], Awaitable[None]]
Mark = Callable[[Database, list[str], Session], Awaitable[None]]


def events(count: int) -> list[Envelope[EventData]]:
    return [
        ReferralEvents(f"ref-{n}", tenant="E06000022", source="bench").submitted(
            at=datetime.now(UTC), needs=[NeedCode.SEMH], locality="locality-1", setting_id="setting-001"
        )
        for n in range(count)
    ]


async def stage_in_place(db: Database, envelopes: Sequence[Envelope[EventData]], session: Session) -> None:
    documents = [{**outbox_document(TOPIC, e), "published_at": None} for e in envelopes]
    await db[OUTBOX].insert_many(documents, session=session)


async def mark_in_place(db: Database, ids: list[str], session: Session) -> None:
    await db[OUTBOX].update_many(
        {"_id": {"$in": ids}}, {"$set": {"published_at": datetime.now(UTC)}}, session=session
    )


async def stage_pending(db: Database, envelopes: Sequence[Envelope[EventData]], session: Session) -> None:
    await stage_events(db, topic=TOPIC, envelopes=envelopes, session=session)


async def mark_pending(db: Database, ids: list[str], session: Session) -> None:
    await db[PENDING].delete_many({"_id": {"$in": ids}}, session=session)  # as OutboxRelay._mark


WAYS: dict[str, tuple[Stage, Mark]] = {
    "outbox + pending ids (now)": (stage_pending, mark_pending),
    "published_at in place (before)": (stage_in_place, mark_in_place),
}


async def measure(
    client: AsyncMongoClient[dict[str, Any]],
    db: Database,
    server_pid: int,
    way: tuple[Stage, Mark],
    count: int,
) -> tuple[float, float]:
    stage, mark = way
    batch = events(count)
    before = cpu_seconds(server_pid)
    for start in range(0, count, STAGED_TOGETHER):

        async def staging(
            session: Session, chunk: Sequence[Envelope[EventData]] = batch[start : start + STAGED_TOGETHER]
        ) -> None:
            await stage(db, chunk, session)

        await in_transaction(client, staging)
    staged = cpu_seconds(server_pid)
    ids = [e.id for e in batch]
    for start in range(0, count, MARK_CHUNK):

        async def marking(session: Session, chunk: list[str] = ids[start : start + MARK_CHUNK]) -> None:
            await mark(db, chunk, session)

        await in_transaction(client, marking)
    marked = cpu_seconds(server_pid)
    return (staged - before) * 1000 / count, (marked - staged) * 1000 / count


async def run(url: str, server_pid: int, count: int, kept: int) -> None:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(url, tz_aware=True)
    databases = {name: client[f"bench_outbox_{n}"] for n, name in enumerate(WAYS)}
    await databases["published_at in place (before)"][OUTBOX].create_indexes(
        [IndexModel([("published_at", 1), ("_id", 1)])]
    )
    for name, (stage, mark) in WAYS.items():  # the week already kept, published
        await measure(client, databases[name], server_pid, (stage, mark), kept)
    print(f"{count:,} events each way, {kept:,} published already kept, {STAGED_TOGETHER} staged and "
          f"{MARK_CHUNK} marked a transaction; SecantusDB CPU ms per event")  # fmt: skip
    print(f"{'way':<32} {'stage':>7} {'mark':>7} {'both':>7}")
    for _ in range(ROUNDS):
        for name, way in WAYS.items():
            began = time.perf_counter()
            staging, marking = await measure(client, databases[name], server_pid, way, count)
            print(f"{name:<32} {staging:>7.3f} {marking:>7.3f} {staging + marking:>7.3f}"
                  f"   ({time.perf_counter() - began:.1f} s)")  # fmt: skip
    await client.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=6_000)
    parser.add_argument("--kept", type=int, default=30_000)
    args = parser.parse_args()
    if args.events < 1 or args.kept < 0:
        parser.error("--events must be positive and --kept not negative")
    with scratch_mongodb() as server:
        asyncio.run(run(server.url, server.process.pid, args.events, args.kept))


if __name__ == "__main__":
    main()
