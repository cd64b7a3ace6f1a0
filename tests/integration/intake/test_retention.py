"""Intake's retention on real servers: what is past it goes, a chunk at a time; nothing else does."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from signpost.intake.app import create_app as create_intake
from signpost.intake.referrals.service import IDEMPOTENCY_KEYS
from signpost.intake.retention import IDEMPOTENCY_KEY_RETENTION, prune_deliveries, prune_idempotency_keys
from signpost.intake.subscriptions.models import DELIVERIES
from signpost.shared import retention
from signpost.shared.events import first_event_id_at
from signpost.shared.service import Runtime
from signpost.shared.settings import Settings

from tests.conftest import eventually, serving

AREA = Settings.model_fields["tenant"].default  # the tests' settings' tenant


def id_days_ago(days: float) -> str:
    """A UUIDv7 text of that moment, unique."""
    stamp = first_event_id_at((datetime.now(UTC) - timedelta(days=days)).timestamp())
    return stamp[:19] + uuid.uuid4().hex[:4] + "-" + uuid.uuid4().hex[:12]


def delivery(days_ago: float, status: str, tenant: str = AREA) -> dict[str, Any]:
    return {
        "_id": id_days_ago(days_ago),
        "tenant": tenant,
        "subscription_id": "s",
        "status": status,
        "attempts": [],
    }


async def test_finished_deliveries_queued_before_the_cutoff_go_and_pending_ones_stay(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(retention, "PRUNE_CHUNK", 2)  # several chunks
    old = [delivery(31 + n, status) for n, status in enumerate(["delivered", "failed"] * 3)]
    old_but_pending, recent = delivery(40, "pending"), delivery(29, "delivered")
    await runtime.db[DELIVERIES].insert_many([*old, old_but_pending, recent])
    cutoff = datetime.now(UTC) - timedelta(days=30)
    assert await prune_deliveries(runtime.db, tenant=runtime.settings.tenant, before=cutoff) == len(old)
    kept = sorted([d["_id"] async for d in runtime.db[DELIVERIES].find({})])
    assert kept == sorted([old_but_pending["_id"], recent["_id"]])
    assert (
        await prune_deliveries(runtime.db, tenant=runtime.settings.tenant, before=cutoff) == 0
    )  # idempotent


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


async def test_idempotency_keys_first_used_over_a_week_ago_are_forgotten(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(retention, "PRUNE_CHUNK", 2)
    now = datetime.now(UTC)
    ages = {"fresh": 0.1, "six-days": 6.9, "over-a-week": 7.1, "a-month": 30}
    keys = [
        {"_id": f"org:user:{name}", "created_at": now - timedelta(days=days)} for name, days in ages.items()
    ]
    await runtime.db[IDEMPOTENCY_KEYS].insert_many(keys)
    assert await prune_idempotency_keys(runtime.db, before=now - IDEMPOTENCY_KEY_RETENTION) == 2
    remembered = sorted([k["_id"] async for k in runtime.db[IDEMPOTENCY_KEYS].find({})])
    assert remembered == ["org:user:fresh", "org:user:six-days"]


async def test_a_running_intake_forgets_old_idempotency_keys(
    settings: Settings, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(retention, "PRUNE_FIRST_DELAY_S", 0.1)
    old = {"_id": "org:user:old-key", "created_at": datetime.now(UTC) - timedelta(days=8)}
    await runtime.db[IDEMPOTENCY_KEYS].insert_one(old)
    async with serving(create_intake(settings)):

        async def forgotten() -> bool:
            return await runtime.db[IDEMPOTENCY_KEYS].count_documents({}) == 0

        await eventually(forgotten, what="the first retention pass")
