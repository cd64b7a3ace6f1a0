"""`signpost dlq list|show|replay` against a real broker with real dead letters."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

from aiokafka import AIOKafkaProducer
from signpost.shared.events import Envelope, EventData, new_event, to_kafka_headers, to_kafka_value
from signpost.shared.kafka import create_broker, ensure_topics, subscribe_events
from signpost.shared.settings import Settings
from signpost.shared.topics import Topics

from tests.conftest import eventually, settings_for
from tests.integration.records import headers_of, records_on, wait_for_records
from tests.publishing import publish_event
from tests.servers import KafkaServer, MongoServer
from tests.unit.shared.test_events import submitted

NOT_AN_EVENT = b'{"referral_id": "r-8", "age_years": "not a number"}'


async def dlq(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "SIGNPOST_KAFKA_BOOTSTRAP": str(settings.kafka_bootstrap),
        "SIGNPOST_TOPIC_PREFIX": settings.topic_prefix,
    }
    # In a thread: the consumers in this process keep their heartbeats meanwhile.
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "signpost.platform.cli", "dlq", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_inspect_and_replay_dead_letters(kafka: KafkaServer, mongodb: MongoServer) -> None:
    settings = settings_for(kafka, mongodb, retry_delays_s=(0.2,))
    await ensure_topics(settings)
    topics = Topics.from_settings(settings)
    failing: Envelope[EventData] = new_event(submitted("r-8"), source="/tests", tenant="E06000023")
    broken = True
    handled: list[str] = []

    async def handler(envelope: Envelope[EventData]) -> None:
        if broken and envelope.id == failing.id:
            raise LookupError("provision p-3 is not in the catalogue")
        handled.append(envelope.id)

    broker = create_broker(settings, service="routing")
    subscribe_events(broker, settings=settings, service="routing", handler=handler)
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
    await producer.start()
    try:
        async with broker:
            await broker.start()
            await producer.send_and_wait(
                topics.referrals,
                NOT_AN_EVENT,
                key=b"r-8",  # the failing event's partition: this one is dead-lettered first
                headers=[(k, v.encode()) for k, v in to_kafka_headers(failing).items()],
            )
            await publish_event(broker, topic=topics.referrals, envelope=failing)
            await wait_for_records(settings, topics.dead_letters, 2)

            listed = await dlq(settings, "list")
            assert listed.returncode == 0, listed.stderr
            assert "2 dead letter(s)" in listed.stdout
            heading, not_an_event, failed = listed.stdout.splitlines()[1:4]
            assert heading.split()[:6] == ["offset", "service", "kind", "attempts", "origin", "key"]
            assert not_an_event.split()[:4] == ["0", "routing", "not-an-event", "0"]
            assert "body: age_years" in not_an_event
            assert failed.split()[:4] == ["1", "routing", "handler-failed", "2"]
            assert failed.split()[5] == failing.subject  # the runbook finds a stuck referral's by its id
            assert "LookupError: provision p-3 is not in the catalogue" in failed
            assert f"{topics.referrals}[" in failed

            shown = await dlq(settings, "show", "1")
            assert shown.returncode == 0, shown.stderr
            assert "attempts:   2 (first failed " in shown.stdout
            assert f"ce_id: {failing.id}" in shown.stdout and "retry_" not in shown.stdout
            missing = await dlq(settings, "show", "99")
            assert missing.returncode == 2 and "no dead letter at offset" in missing.stderr

            broken = False  # the bug is fixed: replaying now gets the event handled
            replayed = await dlq(settings, "replay", "1")
            assert replayed.returncode == 0 and f"replayed 1 to {topics.referrals}" in replayed.stdout
            await eventually(lambda: _contains(handled, failing.id), what="the replayed event handled")
    finally:
        await producer.stop()

    copies = [r for r in await records_on(settings, topics.referrals) if r.value == to_kafka_value(failing)]
    assert len(copies) == 2 and copies[0].value == copies[1].value
    assert headers_of(copies[1]) == headers_of(copies[0])  # the original headers, nothing added


async def _contains(items: list[str], wanted: str) -> bool:
    return wanted in items
