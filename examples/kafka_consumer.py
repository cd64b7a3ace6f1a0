"""Read routed offers from Signpost's Kafka topic as CloudEvents, with the CloudEvents SDK and aiokafka.

    pip install "cloudevents>=2.2" aiokafka
    python examples/kafka_consumer.py --bootstrap 127.0.0.1:<kafka port that `signpost run` printed>

Prints one line per offer routed to a provision, and runs until Ctrl-C (or --max-offers).
Every Signpost event is a CloudEvent in Kafka binary mode (`ce_*` headers, JSON body),
keyed by referral id; this reads them with the SDK's Kafka binding, so nothing here knows
Signpost's header names.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from aiokafka import AIOKafkaConsumer
from cloudevents.core.bindings.kafka import KafkaMessage, from_binary
from cloudevents.core.formats.json import JSONFormat

ROUTED = "uk.signpost.referral.routed.v1"


async def consume(
    *, bootstrap: str, topic: str, group: str, from_beginning: bool, max_offers: int | None
) -> None:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest" if from_beginning else "latest",
        enable_auto_commit=True,
    )
    await consumer.start()
    printed = 0
    try:
        async for record in consumer:
            event = from_binary(
                KafkaMessage(headers=dict(record.headers), key=record.key, value=record.value), JSONFormat()
            )
            if event.get_type() != ROUTED:
                continue
            data = event.get_data()
            assert isinstance(data, dict)
            for offer in data["offers"]:
                print(
                    f"{event.get_time():%Y-%m-%d %H:%M:%S} referral {event.get_subject()} -> "
                    f"{offer['provision_id']} ({offer['provision_name']}, {offer['organisation_id']}) "
                    f"for {', '.join(offer['needs_met'])}: {offer['explanation']}",
                    flush=True,
                )
                printed += 1
            if max_offers is not None and printed >= max_offers:
                return
    finally:
        await consumer.stop()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--bootstrap", required=True, help="Kafka bootstrap servers, host:port")
    parser.add_argument("--topic", default="signpost.referrals", help="default signpost.referrals")
    parser.add_argument(
        "--group", default="partner-example", help="your consumer group (default partner-example)"
    )
    parser.add_argument(
        "--from-beginning", action="store_true", help="start at the oldest event, not new ones"
    )
    parser.add_argument("--max-offers", type=int, help="stop after printing this many offers")
    args = parser.parse_args()
    try:
        asyncio.run(
            consume(
                bootstrap=args.bootstrap,
                topic=args.topic,
                group=args.group,
                from_beginning=args.from_beginning,
                max_offers=args.max_offers,
            )
        )
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
