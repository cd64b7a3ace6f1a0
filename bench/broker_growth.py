"""The embedded broker's cost per message as its log grows: why a long run on Tansu slows down.

    uv run --extra embedded python bench/broker_growth.py [--messages 15000] [--rate 300]
                                                          [--groups 0 3] [--partitions 6]

For each number of consumer groups it starts a fresh embedded Tansu (memory storage), creates a
topic, produces single records at a fixed rate (as the outbox relays do: one small batch at a
time) while every group reads the topic's tail and commits, and prints Tansu's CPU per message for
each slice of the log. No database and no services: only the broker and aiokafka.

What it shows (read from Tansu 0.6.0's source, `DynoStore::fetch`): a fetch that finds new data
lists every batch object stored for that partition, and ListOffsets lists them too. Neither is
indexed and nothing is ever deleted (the memory engine has no retention, and DeleteRecords is
unimplemented), so each group's reads cost more the longer the broker has run. With no group
reading, the cost per message stays flat. Apache Kafka indexes its segments: there this growth
does not exist, so it is a limit of the embedded runtime, not of the platform.
"""

from __future__ import annotations

import argparse
import asyncio
import time

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from signpost.platform.benchkit import group_cpu_seconds, run_fast, scratch_kafka
from signpost.platform.embedded import EmbeddedServer

TOPIC = "growth"
PAYLOAD = b"x" * 600  # about the size of a referral event's body
SLICES = 5


async def tail(bootstrap: str, group: str, stop: asyncio.Event) -> None:
    """Read the topic's tail in a consumer group and commit, as the services' consumers do."""
    consumer = AIOKafkaConsumer(
        TOPIC,
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=6000,
        heartbeat_interval_ms=500,
    )
    await consumer.start()
    try:
        while not stop.is_set():
            if await consumer.getmany(timeout_ms=200):
                await consumer.commit()
    finally:
        await consumer.stop()


async def measure(
    broker: EmbeddedServer, *, messages: int, rate: float, groups: int, partitions: int
) -> list[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=broker.url)
    await admin.start()
    await admin.create_topics([NewTopic(TOPIC, partitions, 1)])
    await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=broker.url, acks="all", linger_ms=0)
    await producer.start()
    stop = asyncio.Event()
    readers = [asyncio.create_task(tail(broker.url, f"group-{n}", stop)) for n in range(groups)]
    rows: list[str] = []
    sent = 0
    per_slice = messages // SLICES
    try:
        for _ in range(SLICES):
            cpu_before, started = group_cpu_seconds(broker.process.pid), time.monotonic()
            acks = []
            for _ in range(per_slice):
                acks.append(await producer.send(TOPIC, PAYLOAD, key=str(sent).encode()))
                sent += 1
                # Paced against the clock, so a slow broker shows as CPU, not as a lower rate.
                await asyncio.sleep(max(0.0, started + len(acks) / rate - time.monotonic()))
            await asyncio.gather(*acks)
            elapsed = time.monotonic() - started
            cpu_ms = (group_cpu_seconds(broker.process.pid) - cpu_before) * 1000 / per_slice
            rows.append(
                f"| {groups} | {sent - per_slice:,}-{sent:,} | {per_slice / elapsed:,.0f} | {cpu_ms:.3f} |"
            )
    finally:
        stop.set()
        await asyncio.gather(*readers, return_exceptions=True)
        await producer.stop()
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=15_000, help="messages per configuration")
    parser.add_argument("--rate", type=float, default=300.0, help="messages produced per second")
    parser.add_argument("--groups", type=int, nargs="+", default=[0, 3], help="consumer groups reading")
    parser.add_argument("--partitions", type=int, default=6)
    args = parser.parse_args()
    if args.messages < SLICES or args.rate <= 0 or args.partitions < 1 or min(args.groups) < 0:
        parser.error(f"--messages must be at least {SLICES}; --rate, --partitions positive; --groups >= 0")
    print(f"Tansu (memory storage), {args.partitions} partitions, single records at {args.rate:,.0f}/s\n")
    print("| groups reading | messages already in the log | produced/s | Tansu CPU ms per message |")
    print("| --- | --- | --- | --- |")
    for groups in args.groups:
        with scratch_kafka() as broker:
            for row in run_fast(
                measure(
                    broker, messages=args.messages, rate=args.rate, groups=groups, partitions=args.partitions
                )
            ):
                print(row, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
