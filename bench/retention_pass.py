"""What one retention pass over the outbox costs the embedded SecantusDB, and everyone else on it,
when nothing is due: the usual pass, every ten minutes, in intake and in routing.

    uv run --extra embedded python bench/retention_pass.py                  # 200,000 events
    uv run --extra embedded python bench/retention_pass.py --events 50000

It fills an outbox with events staged in the last hour (as `stage_events` writes them, with the
outbox's indexes), then times the pass two ways while another client inserts into another
database: by the staging time's index (`prune_published`, what the services run) and by an
`_id` range (the query retention ran before: SecantusDB's `_id` index serves equality only).
The inserts' latency shows what the rest of the platform waits meanwhile. Last, what the
index costs: server CPU per event staged (four to a transaction, as a referral's events go),
into an outbox with and without it, twice each way in turn.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from analytics import cpu_seconds  # bench/analytics.py: this script's folder is on sys.path
from pymongo import AsyncMongoClient
from signpost.shared.events import event_id_at, first_event_id_at
from signpost.shared.mongo import Database
from signpost.shared.outbox import OUTBOX, OUTBOX_INDEXES, PUBLISHED_RETENTION_S, prune_published
from signpost.shared.retention import prune_in_chunks

from signpost.platform.benchkit import scratch_mongodb

FILL_CHUNK = 10_000


async def fill(db: Database, events: int) -> None:
    for index in OUTBOX_INDEXES:
        await db[OUTBOX].create_indexes([index])
    start_ms = int(time.time() * 1000) - 3_600_000
    for first in range(0, events, FILL_CHUNK):
        await db[OUTBOX].insert_many(
            [
                {
                    "_id": event_id_at((start_ms + n * 3_600_000 // events) / 1000),
                    "topic": "signpost.referrals",
                    "key": f"referral-{n}",
                    "headers": {"ce_type": "uk.signpost.referral.submitted.v1"},
                    "value": b"x" * 900,  # about a submitted event's size
                    "created_at": datetime.now(UTC),
                }
                for n in range(first, min(events, first + FILL_CHUNK))
            ]
        )


async def timed_pass(
    client: AsyncMongoClient[Any], server_pid: int, work: Callable[[], Awaitable[int]]
) -> tuple[float, float, list[float], int]:
    """The work's wall time and server CPU, the latency of each insert another client made
    meanwhile (what the rest of the platform waits), and what the work returned."""
    other = client["retention_bench_other"]["writes"]
    latencies: list[float] = []
    done = asyncio.Event()

    async def keep_inserting() -> None:
        while not done.is_set():
            began = time.perf_counter()
            await other.insert_one({"at": began})
            latencies.append(time.perf_counter() - began)
            await asyncio.sleep(0.01)

    writer = asyncio.create_task(keep_inserting())
    await asyncio.sleep(0.5)
    latencies.clear()
    cpu_before, began = cpu_seconds(server_pid), time.perf_counter()
    result = await work()
    took, cpu = time.perf_counter() - began, cpu_seconds(server_pid) - cpu_before
    done.set()
    await writer
    return took, cpu, sorted(latencies), result


async def pass_rows(
    client: AsyncMongoClient[Any], server_pid: int, ways: list[tuple[str, Callable[[], Awaitable[int]]]]
) -> list[str]:
    """One table row per way of doing a pass that finds nothing due: its wall time and server CPU,
    and the inserts another client made meanwhile."""
    rows = [
        "| pass | wall s | server CPU s | inserts meanwhile | insert p50 ms | insert max ms |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, work in ways:
        took, cpu, latencies, found = await timed_pass(client, server_pid, work)
        assert found == 0, "nothing was due"
        p50 = latencies[len(latencies) // 2] * 1000 if latencies else float("nan")
        worst = latencies[-1] * 1000 if latencies else float("nan")
        rows.append(f"| {name} | {took:.3f} | {cpu:.3f} | {len(latencies)} | {p50:.1f} | {worst:.0f} |")
    return rows


async def staging_cpu_per_event(
    client: AsyncMongoClient[Any], server_pid: int, *, indexed: bool, round_: int
) -> float:
    """Server CPU (ms) per outbox document inserted, 1,000 transactions of four."""
    db = client[f"retention_bench_staging_{'indexed' if indexed else 'plain'}_{round_}"]
    if indexed:
        await db[OUTBOX].create_indexes(OUTBOX_INDEXES)
    await db[OUTBOX].insert_one({"_id": "warm-up", "created_at": datetime.now(UTC)})
    before = cpu_seconds(server_pid)
    for _ in range(1_000):
        async with client.start_session() as session, await session.start_transaction():
            documents = [
                {
                    "_id": event_id_at(time.time()),
                    "topic": "t",
                    "key": "k",
                    "value": b"x" * 900,
                    "created_at": datetime.now(UTC),
                }
                for _ in range(4)
            ]
            await db[OUTBOX].insert_many(documents, session=session)
    return float(cpu_seconds(server_pid) - before) / 4_000 * 1000


async def measure(events: int) -> list[str]:
    with scratch_mongodb() as server:
        client: AsyncMongoClient[Any] = AsyncMongoClient(server.url, tz_aware=True)
        try:
            db = client["retention_bench"]
            await fill(db, events)
            before = datetime.now(UTC) - timedelta(seconds=PUBLISHED_RETENTION_S)
            by_id = {"_id": {"$lt": first_event_id_at(before.timestamp())}}
            ways: list[tuple[str, Callable[[], Awaitable[int]]]] = [
                ("by staging time's index (prune_published)", lambda: prune_published(db, before=before)),
                ("by an _id range (before)", lambda: prune_in_chunks(db, OUTBOX, by_id)),
            ]
            rows = [
                f"retention pass over an outbox of {events:,} events, none due",
                *await pass_rows(client, server.process.pid, ways),
            ]
            costs: dict[bool, list[float]] = {False: [], True: []}
            for round_ in range(2):
                for indexed in (False, True):
                    costs[indexed].append(
                        await staging_cpu_per_event(
                            client, server.process.pid, indexed=indexed, round_=round_
                        )
                    )
            rows += [
                "",
                "server CPU per event staged (ms; 4,000 events, two rounds each way)",
                "| outbox | round 1 | round 2 |",
                "| --- | --- | --- |",
                *(
                    f"| {'with the created_at index' if indexed else 'without it'} | "
                    + " | ".join(f"{cost:.3f}" for cost in costs[indexed])
                    + " |"
                    for indexed in (False, True)
                ),
            ]
            return rows
        finally:
            await client.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=200_000, help="events in the outbox (default 200,000)")
    args = parser.parse_args()
    print("\n".join(asyncio.run(measure(args.events))))


if __name__ == "__main__":
    main()
