"""How long a record waits for its consumer on the embedded broker, by the consumer's fetch wait.

    uv run --extra embedded python bench/broker_hold.py [--waits 500 100 20] [--records 200] [--rate 20]

For each `fetch_max_wait_ms` it starts a fresh embedded Tansu (memory storage), lets one consumer
group join a 6-partition topic, produces single records at a slow fixed rate (as at the rates an
area really sees) and prints produce->consume latency and Tansu's share of a core. No database
and no services: only the broker and aiokafka.

What it shows: a fetch that finds nothing is held for its wait, and Tansu does not answer it when
records arrive meanwhile (Apache Kafka does), so each consumer hop waits up to about half of the
consumers' wait. Hence `SIGNPOST_KAFKA_FETCH_MAX_WAIT_MS` (README, "The embedded servers").
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import time

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from signpost.platform.benchkit import group_cpu_seconds, run_fast, scratch_kafka
from signpost.platform.embedded import EmbeddedServer

TOPIC = "hold"
PARTITIONS = 6
JOIN_S = 8.0  # a group join on Tansu takes several seconds; records sent before it are not timed


async def measure(broker: EmbeddedServer, *, wait_ms: int, records: int, rate: float) -> str:
    admin = AIOKafkaAdminClient(bootstrap_servers=broker.url)
    await admin.start()
    await admin.create_topics([NewTopic(TOPIC, PARTITIONS, 1)])
    await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=broker.url, acks="all")
    consumer = AIOKafkaConsumer(
        TOPIC,
        bootstrap_servers=broker.url,
        group_id="hold",
        auto_offset_reset="latest",
        enable_auto_commit=False,
        fetch_max_wait_ms=wait_ms,
    )
    await producer.start()
    await consumer.start()
    waited_ms: list[float] = []

    async def read() -> None:
        while True:
            for batch in (await consumer.getmany(timeout_ms=1000)).values():
                now = time.time()
                waited_ms.extend((now - float(record.value or b"0")) * 1000 for record in batch)

    reader = asyncio.create_task(read())
    try:
        await asyncio.sleep(JOIN_S)
        waited_ms.clear()
        cpu_before, started = group_cpu_seconds(broker.process.pid), time.monotonic()
        for n in range(records):
            await producer.send_and_wait(TOPIC, str(time.time()).encode(), key=str(n).encode())
            await asyncio.sleep(max(0.0, started + (n + 1) / rate - time.monotonic()))
        await asyncio.sleep(wait_ms / 1000 + 0.5)  # the last record's hold
        share = (group_cpu_seconds(broker.process.pid) - cpu_before) / (time.monotonic() - started)
    finally:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
        await consumer.stop()
        await producer.stop()
    cuts = statistics.quantiles(waited_ms, n=100)
    return (
        f"| {wait_ms:,} | {len(waited_ms):,} of {records:,} | {cuts[49]:.0f} ms | {cuts[98]:.0f} ms "
        f"| {max(waited_ms):.0f} ms | {share * 100:.1f}% |"
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--waits", type=int, nargs="+", default=[500, 100, 20], help="fetch_max_wait_ms values"
    )
    parser.add_argument("--records", type=int, default=200, help="records timed per wait")
    parser.add_argument("--rate", type=float, default=20.0, help="records produced per second")
    args = parser.parse_args()
    if min(args.waits) < 1 or args.records < 2 or args.rate <= 0:
        parser.error("--waits at least 1 ms, --records at least 2, --rate positive")
    print(f"Tansu (memory storage), {PARTITIONS} partitions, one consumer, records at {args.rate:,.0f}/s\n")
    print("| fetch_max_wait_ms | records read | produce->consume p50 | p99 | max | Tansu share of a core |")
    print("| --- | --- | --- | --- | --- | --- |")
    for wait_ms in args.waits:
        with scratch_kafka() as broker:
            print(
                run_fast(measure(broker, wait_ms=wait_ms, records=args.records, rate=args.rate)), flush=True
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
