"""Intake's retention on real servers: what is past it goes, a chunk at a time; nothing else does."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import pytest_asyncio
from signpost.intake.app import create_app as create_intake
from signpost.intake.retention import prune_deliveries
from signpost.intake.subscriptions.models import DELIVERIES
from signpost.shared import retention
from signpost.shared.events import first_event_id_at
from signpost.shared.service import Runtime
from signpost.shared.settings import Settings

from tests.conftest import eventually, serving


@pytest_asyncio.fixture
async def runtime(settings: Settings) -> AsyncIterator[Runtime]:
    runtime = Runtime.build(settings, "intake")
    try:
        yield runtime
    finally:
        await runtime.client.close()


def id_days_ago(days: float) -> str:
    """A UUIDv7 text of that moment, unique."""
    stamp = first_event_id_at((datetime.now(UTC) - timedelta(days=days)).timestamp())
    return stamp[:19] + uuid.uuid4().hex[:4] + "-" + uuid.uuid4().hex[:12]


def delivery(days_ago: float, status: str) -> dict[str, Any]:
    return {"_id": id_days_ago(days_ago), "subscription_id": "s", "status": status, "attempts": []}


async def test_finished_deliveries_queued_before_the_cutoff_go_and_pending_ones_stay(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(retention, "PRUNE_CHUNK", 2)  # several chunks
    old = [delivery(31 + n, status) for n, status in enumerate(["delivered", "failed"] * 3)]
    old_but_pending, recent = delivery(40, "pending"), delivery(29, "delivered")
    await runtime.db[DELIVERIES].insert_many([*old, old_but_pending, recent])
    cutoff = datetime.now(UTC) - timedelta(days=30)
    assert await prune_deliveries(runtime.db, before=cutoff) == len(old)
    kept = sorted([d["_id"] async for d in runtime.db[DELIVERIES].find({})])
    assert kept == sorted([old_but_pending["_id"], recent["_id"]])
    assert await prune_deliveries(runtime.db, before=cutoff) == 0  # idempotent


async def test_a_running_intake_prunes_deliveries_past_the_retention_setting(
    settings: Settings, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(retention, "PRUNE_FIRST_DELAY_S", 0.1)
    settings = settings.model_copy(update={"webhook_delivery_retention_days": 2})
    past, within = delivery(3, "failed"), delivery(1, "delivered")
    await runtime.db[DELIVERIES].insert_many([past, within])
    async with serving(create_intake(settings)):

        async def pruned() -> bool:
            return await runtime.db[DELIVERIES].count_documents({"_id": past["_id"]}) == 0

        await eventually(pruned, what="the first retention pass")
        assert await runtime.db[DELIVERIES].count_documents({"_id": within["_id"]}) == 1
