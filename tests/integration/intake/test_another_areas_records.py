"""Intake's background passes keep to their own area's records, with their own area's periods.

A database holds one area's records (start-up refuses another area's), so these are the second
guard: another area's records put in directly, as a database two areas shared before the claim
would hold them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from signpost.intake.audit.service import AUDIT
from signpost.intake.referrals.erasure import erase_ended_referrals
from signpost.intake.referrals.models import REFERRALS
from signpost.intake.referrals.service import CHILD_DETAILS
from signpost.intake.retention import prune_audit, prune_deliveries
from signpost.intake.subscriptions.dispatcher import WebhookDispatcher
from signpost.intake.subscriptions.models import DELIVERIES
from signpost.shared.events import event_id_at
from signpost.shared.service import Runtime

OTHER_AREA = "E06000022"
A_YEAR_AGO = (datetime.now(UTC) - timedelta(days=365)).replace(microsecond=0)  # as MongoDB keeps it


def id_at(moment: datetime) -> str:
    return event_id_at(moment.timestamp())


def withdrawn_a_year_ago(tenant: str) -> dict[str, Any]:
    return {
        "_id": id_at(A_YEAR_AGO),
        "tenant": tenant,
        "status": "withdrawn",
        "erased_at": None,
        "referrer": {"name": "A. Teacher", "phone": "01632 960001", "role": "SENCO"},
        "information": [{"at": A_YEAR_AGO, "text": "Mum asks for evening calls", "by": "senco"}],
        "timeline": [{"at": A_YEAR_AGO, "status": "withdrawn", "note": "moved in with Gran"}],
        "graduated_approach": None,
    }


async def test_an_areas_erasure_pass_leaves_another_areas_referral_alone(runtime: Runtime) -> None:
    """Area B's pass erased area A's referral and deleted its child's details, by B's retention."""
    ours, theirs = withdrawn_a_year_ago(runtime.settings.tenant), withdrawn_a_year_ago(OTHER_AREA)
    await runtime.db[REFERRALS].insert_many([ours, theirs])
    await runtime.db[CHILD_DETAILS].insert_many(
        [{"_id": r["_id"], "tenant": r["tenant"], "first_name": "Sam"} for r in (ours, theirs)]
    )

    erased = await erase_ended_referrals(
        runtime.db, tenant=runtime.settings.tenant, ended_before=datetime.now(UTC)
    )

    assert erased == 1
    assert await runtime.db[REFERRALS].find_one({"_id": theirs["_id"]}) == theirs
    assert await runtime.db[CHILD_DETAILS].count_documents({"_id": theirs["_id"]}) == 1
    assert await runtime.db[CHILD_DETAILS].count_documents({"_id": ours["_id"]}) == 0
    trail = [record async for record in runtime.db[AUDIT].find({})]
    assert [(r["tenant"], r["referral_id"]) for r in trail] == [(runtime.settings.tenant, ours["_id"])]


async def test_retention_leaves_another_areas_audit_records_and_deliveries(runtime: Runtime) -> None:
    here = runtime.settings.tenant
    audit = [{"_id": id_at(A_YEAR_AGO), "tenant": tenant, "at": A_YEAR_AGO} for tenant in (here, OTHER_AREA)]
    deliveries = [
        {"_id": id_at(A_YEAR_AGO), "tenant": tenant, "subscription_id": "s", "status": "delivered"}
        for tenant in (here, OTHER_AREA)
    ]
    await runtime.db[AUDIT].insert_many(audit)
    await runtime.db[DELIVERIES].insert_many(deliveries)
    now = datetime.now(UTC)

    assert await prune_audit(runtime.db, tenant=here, before=now) == 1
    assert await prune_deliveries(runtime.db, tenant=here, before=now) == 1

    assert [r["tenant"] async for r in runtime.db[AUDIT].find({})] == [OTHER_AREA]
    assert [d["tenant"] async for d in runtime.db[DELIVERIES].find({})] == [OTHER_AREA]


async def test_the_dispatcher_claims_only_its_own_areas_deliveries(runtime: Runtime) -> None:
    due = {"subscription_id": "gone", "status": "pending", "attempts": [], "next_attempt_at": A_YEAR_AGO}
    ours = {"_id": id_at(A_YEAR_AGO), "tenant": runtime.settings.tenant, **due}
    theirs = {"_id": id_at(A_YEAR_AGO), "tenant": OTHER_AREA, **due}
    await runtime.db[DELIVERIES].insert_many([ours, theirs])

    async with httpx.AsyncClient() as client:
        assert await WebhookDispatcher(runtime).deliver_due(client) == 1

    assert await runtime.db[DELIVERIES].find_one({"_id": theirs["_id"]}) == theirs  # not claimed, not sent
    mine = await runtime.db[DELIVERIES].find_one({"_id": ours["_id"]})
    assert mine is not None and mine["status"] == "failed"  # its subscription is gone
