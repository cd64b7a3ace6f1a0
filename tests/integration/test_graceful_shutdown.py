"""SIGTERM while an event handler is in flight: it finishes, its offset is committed, its events go out."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

from pymongo import AsyncMongoClient
from signpost.shared.events import new_event
from signpost.shared.kafka import create_broker, ensure_topics
from signpost.shared.outbox import OUTBOX, pending_count
from signpost.shared.settings import Settings
from signpost.shared.topics import Topics

from signpost.platform.processes import free_port
from tests.conftest import eventually
from tests.integration.records import committed_offsets
from tests.integration.slow_consumer_app import HANDLED
from tests.publishing import publish_event
from tests.unit.shared.test_events import submitted

ROOT = Path(__file__).resolve().parents[2]


def service_env(settings: Settings, signals: Path) -> dict[str, str]:
    return {
        **os.environ,
        "SLOW_HANDLER_DIR": str(signals),
        "SIGNPOST_KAFKA_BOOTSTRAP": settings.kafka_bootstrap or "",
        "SIGNPOST_KAFKA_IDEMPOTENCE": str(settings.kafka_idempotence).lower(),
        "SIGNPOST_MONGODB_URL": settings.mongodb_url or "",
        "SIGNPOST_TOPIC_PREFIX": settings.topic_prefix,
        "SIGNPOST_TOPIC_PARTITIONS": str(settings.topic_partitions),
        "SIGNPOST_DATABASE_PREFIX": settings.database_prefix,
        "SIGNPOST_LOG_FORMAT": "json",
        # Only the shutdown flush may publish the staged event.
        "SIGNPOST_OUTBOX_POLL_INTERVAL_S": "60",
        "SIGNPOST_SHUTDOWN_GRACE_S": "20",
    }


async def test_sigterm_lets_the_handler_in_flight_finish_commit_and_flush(
    settings: Settings, tmp_path: Path
) -> None:
    await ensure_topics(settings)
    port = free_port()
    launch = (
        "import uvicorn; from signpost.shared.settings import Settings; "
        f"uvicorn.run('tests.integration.slow_consumer_app:create_app', factory=True, port={port}, "
        "log_config=None, timeout_graceful_shutdown=round(Settings().shutdown_budget.http_s))"
    )
    log = tmp_path / "service.log"
    with log.open("wb") as output:
        service = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            launch,
            cwd=ROOT,
            env=service_env(settings, tmp_path),
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        broker = create_broker(settings, service="test")
        event = new_event(submitted("r-7"), source="/tests", tenant=settings.tenant)
        async with broker:
            await broker.start()
            await publish_event(broker, topic=Topics.from_settings(settings).referrals, envelope=event)

        await eventually(
            lambda: asyncio.sleep(0, (tmp_path / "started").exists()), timeout_s=60, what="handler started"
        )
        service.send_signal(signal.SIGTERM)
        # Let the handler go on only once the service is shutting down around it.
        await eventually(
            lambda: asyncio.sleep(0, "Waiting for application shutdown" in log.read_text()),
            timeout_s=60,
            what="shutdown begun",
        )
        (tmp_path / "release").touch()
        exit_code = await asyncio.wait_for(service.wait(), timeout=60)
    finally:
        if service.returncode is None:
            service.kill()
            await service.wait()

    assert exit_code in (0, -signal.SIGTERM), log.read_text()  # uvicorn re-raises the signal it caught
    assert "service stopped" in log.read_text()
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(settings.mongodb_url)
    try:
        db = client[settings.database_name("routing")]
        assert await db[HANDLED].find_one({"_id": event.id}) is not None
        assert await db[OUTBOX].count_documents({}) == 1 and await pending_count(db) == 0  # published
    finally:
        await client.close()
    assert await committed_offsets(settings, service="routing") == 1
