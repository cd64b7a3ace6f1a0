"""`signpost dlq list|show|replay` against a real broker with a real dead letter."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from signpost.shared.events import Envelope, EventData
from signpost.shared.kafka import create_broker, ensure_topics, subscribe_events
from signpost.shared.settings import Settings
from signpost.shared.topics import Topics

from signpost.platform.deadletters import read_dead_letters
from tests.conftest import eventually

POISON = b'{"referral_id": "r-9", "age_years": "not a number"}'


def dlq(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "SIGNPOST_KAFKA_BOOTSTRAP": str(settings.kafka_bootstrap),
        "SIGNPOST_TOPIC_PREFIX": settings.topic_prefix,
    }
    return subprocess.run(
        [sys.executable, "-m", "signpost.platform.cli", "dlq", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_inspect_and_replay_a_dead_letter(settings: Settings) -> None:
    await ensure_topics(settings)
    topics = Topics.from_settings(settings)

    async def ignore(_: Envelope[EventData]) -> None:
        return None

    broker = create_broker(settings, service="routing")
    subscribe_events(broker, settings=settings, service="routing", handler=ignore)
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(
            topics.referrals, POISON, key=b"r-9", headers=[("ce_type", b"uk.signpost.referral.submitted.v1")]
        )
        async with broker:
            await broker.start()

            async def letters() -> list[object]:
                return list(
                    await read_dead_letters(
                        bootstrap=str(settings.kafka_bootstrap), topic=topics.dead_letters
                    )
                )

            await eventually(letters, what="a dead letter")
    finally:
        await producer.stop()

    listed = dlq(settings, "list")
    assert listed.returncode == 0, listed.stderr
    assert "1 dead letter(s)" in listed.stdout
    assert "routing" in listed.stdout and "body: age_years" in listed.stdout
    shown = dlq(settings, "show", "0")
    assert (
        shown.returncode == 0 and '"not a number"' in shown.stdout and "ce_type: uk.signpost" in shown.stdout
    )
    missing = dlq(settings, "show", "99")
    assert missing.returncode == 2 and "no dead letter at offset" in missing.stderr

    replayed = dlq(settings, "replay", "0")
    assert replayed.returncode == 0 and f"replayed 0 to {topics.referrals}" in replayed.stdout
    assert await copies_on(settings, topics.referrals, POISON) == 2


async def copies_on(settings: Settings, topic: str, value: bytes) -> int:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=settings.kafka_bootstrap, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        found = 0
        while found < 2:
            try:
                record = await asyncio.wait_for(consumer.getone(), timeout=10)
            except TimeoutError:
                break
            found += record.value == value
        return found
    finally:
        await consumer.stop()
