"""Intake keeps accepting referrals while the broker is unreachable, and publishes them after."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer
from pymongo import AsyncMongoClient
from signpost.intake.app import create_app as create_intake
from signpost.shared.outbox import pending_count
from signpost.shared.settings import Settings
from signpost.shared.topics import Topics

from tests.conftest import Tokens, eventually, serving, settings_for
from tests.factories import referral
from tests.servers import KafkaServer, MongoServer

REFERRAL = referral(need_codes=["SEMH"], level_of_need="targeted")


async def test_referrals_accepted_during_an_outage_are_published_when_it_ends(
    own_kafka: KafkaServer, mongodb: MongoServer, dev_key_file: Path
) -> None:
    assert own_kafka.control is not None
    settings: Settings = settings_for(
        own_kafka, mongodb, kafka_request_timeout_ms=7000, auth_dev_key_file=dev_key_file
    )
    practitioner = {"Authorization": f"Bearer {Tokens(settings).practitioner()}"}
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongodb_url)
    db = mongo[settings.database_name("intake")]
    try:
        async with serving(create_intake(settings)) as intake:
            own_kafka.control.pause()
            try:
                accepted = []
                for _ in range(3):
                    response = await asyncio.wait_for(
                        intake.post("/v1/referrals", json=REFERRAL, headers=practitioner), timeout=10
                    )
                    assert response.status_code == 201, response.text
                    accepted.append(response.json()["id"])
                assert await pending_count(db) == 3
                # Still ready, so a load balancer keeps sending referrals; the body says Kafka is away.
                readiness = await intake.get("/readyz")
                assert readiness.status_code == 200 and readiness.json()["checks"]["kafka"] != "ok"
            finally:
                own_kafka.control.resume()
            await eventually(lambda: _none_pending(db), timeout_s=60, what="outbox drained after the outage")
    finally:
        await mongo.close()

    consumer = AIOKafkaConsumer(
        Topics.from_settings(settings).referrals,
        bootstrap_servers=settings.kafka_bootstrap,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        published: set[str] = set()
        while not set(accepted) <= published:
            record = await asyncio.wait_for(consumer.getone(), timeout=30)
            published.add(record.key.decode())
    finally:
        await consumer.stop()


async def _none_pending(db: Any) -> bool:
    return await pending_count(db) == 0
