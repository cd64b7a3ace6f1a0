"""Retention of personal data on real servers: once a referral has been ended for the retention
period its child's details, referrer's contact details and free text go, what it was stays, the
erasure is in the audit trail, and audit records expire after the same period."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from httpx import AsyncClient
from signpost.intake import retention as intake_retention
from signpost.intake.app import create_app as create_intake
from signpost.intake.audit.service import AUDIT
from signpost.intake.referrals.erasure import erase_ended_referrals
from signpost.intake.referrals.models import REFERRALS
from signpost.intake.referrals.service import CHILD_DETAILS
from signpost.shared import retention
from signpost.shared.events import first_event_id_at
from signpost.shared.service import Runtime
from signpost.shared.settings import Settings

from tests.conftest import Tokens, eventually, serving
from tests.factories import referral

# A retention of under a second: a referral withdrawn now is past it by the next pass.
TINY_RETENTION_DAYS = 0.5 / 86_400


async def withdrawn_referral(intake: AsyncClient, tokens: Tokens) -> str:
    """A referral with free text everywhere, its child's details read once, then withdrawn."""
    practitioner = {"Authorization": f"Bearer {tokens.practitioner()}"}
    body = referral(details="Mum (Jane Doe, 07700 900123) asks for evening calls.")
    body["referrer"] = {**body["referrer"], "phone": "01632 960001", "email": "a.teacher@school.example"}
    created = await intake.post("/v1/referrals", json=body, headers=practitioner)
    assert created.status_code == 201, created.text
    referral_id: str = created.json()["id"]
    read = await intake.get(
        f"/v1/referrals/{referral_id}/child", params={"purpose": "correction"}, headers=practitioner
    )
    assert read.status_code == 200
    withdrawn = await intake.post(
        f"/v1/referrals/{referral_id}/withdraw",
        json={"reason": "other", "note": "Family moved in with Gran, Mrs Smith"},
        headers=practitioner,
    )
    assert withdrawn.status_code == 200, withdrawn.text
    return referral_id


async def test_an_ended_referral_keeps_what_it_was_and_loses_who_it_was_about(
    settings: Settings, runtime: Runtime
) -> None:
    tokens = Tokens(settings)
    practitioner = {"Authorization": f"Bearer {tokens.practitioner()}"}
    async with serving(create_intake(settings)) as intake:
        ended = await withdrawn_referral(intake, tokens)
        still_open = (await intake.post("/v1/referrals", json=referral(), headers=practitioner)).json()["id"]
        before = await runtime.db[REFERRALS].find_one({"_id": ended})
        assert before is not None

        # Ended after the cutoff: kept.
        assert (
            await erase_ended_referrals(
                runtime.db, tenant=settings.tenant, ended_before=datetime.now(UTC) - timedelta(days=1)
            )
            == 0
        )
        assert await runtime.db[CHILD_DETAILS].count_documents({"_id": ended}) == 1

        assert (
            await erase_ended_referrals(runtime.db, tenant=settings.tenant, ended_before=datetime.now(UTC))
            == 1
        )
        assert (
            await erase_ended_referrals(runtime.db, tenant=settings.tenant, ended_before=datetime.now(UTC))
            == 0
        )  # once

        assert await runtime.db[CHILD_DETAILS].count_documents({"_id": ended}) == 0
        assert await runtime.db[CHILD_DETAILS].count_documents({"_id": still_open}) == 1
        after = await runtime.db[REFERRALS].find_one({"_id": ended})
        assert after is not None and after["erased_at"] is not None
        assert after["referrer"] == {
            k: v for k, v in before["referrer"].items() if k not in {"name", "phone", "email"}
        }
        assert [entry["text"] for entry in after["information"]] == [""]
        assert {entry["note"] for entry in after["timeline"]} == {""}
        assert [entry["status"] for entry in after["timeline"]] == [
            entry["status"] for entry in before["timeline"]
        ]
        kept = (
            "child_ref",
            "status",
            "need_codes",
            "locality",
            "setting_id",
            "level_of_need",
            "submitted_at",
        )
        assert {k: after[k] for k in kept} == {k: before[k] for k in kept}

        child = await intake.get(
            f"/v1/referrals/{ended}/child", params={"purpose": "correction"}, headers=practitioner
        )
        assert child.status_code == 410
        assert "erased" in child.json()["detail"] and "retention" in child.json()["detail"]
        view = await intake.get(f"/v1/referrals/{ended}", headers=practitioner)
        assert view.status_code == 200 and view.json()["child_ref"] == before["child_ref"]

        admin = {"Authorization": f"Bearer {tokens.admin()}"}
        trail = (await intake.get("/v1/audit", params={"referral_id": ended}, headers=admin)).json()
        assert [(r["what"], r["purpose"]) for r in trail] == [
            ("personal_data_erased", "retention"),
            ("child_details", "correction"),
        ]


async def test_a_running_intake_erases_after_the_retention_setting_and_expires_audit_records(
    settings: Settings, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(retention, "PRUNE_FIRST_DELAY_S", 0.1)
    monkeypatch.setattr(intake_retention, "ERASURE_INTERVAL_S", 0.2)
    settings = settings.model_copy(update={"personal_data_retention_days": TINY_RETENTION_DAYS})
    stamp = first_event_id_at((datetime.now(UTC) - timedelta(days=1)).timestamp())
    old_record: dict[str, Any] = {
        "_id": stamp,
        "tenant": settings.tenant,
        "at": datetime.now(UTC) - timedelta(days=1),
    }
    await runtime.db[AUDIT].insert_one(old_record)
    tokens = Tokens(settings)
    practitioner = {"Authorization": f"Bearer {tokens.practitioner()}"}
    async with serving(create_intake(settings)) as intake:
        ended = await withdrawn_referral(intake, tokens)

        async def erased() -> bool:
            path = f"/v1/referrals/{ended}/child"
            return (
                await intake.get(path, params={"purpose": "correction"}, headers=practitioner)
            ).status_code == 410

        await eventually(erased, what="the referral's personal data erased")
        assert await runtime.db[AUDIT].count_documents({"_id": stamp}) == 0


async def test_a_referral_changed_after_its_erasure_is_erased_again_and_only_after_its_last_change(
    settings: Settings, runtime: Runtime
) -> None:
    tokens = Tokens(settings)
    practitioner = {"Authorization": f"Bearer {tokens.practitioner()}"}
    async with serving(create_intake(settings)) as intake:
        # Escalated at once: ended, yet information may still be added to it.
        created = await intake.post(
            "/v1/referrals", json=referral(safeguarding_concern=True), headers=practitioner
        )
        escalated = created.json()["id"]
        assert (
            await erase_ended_referrals(runtime.db, tenant=settings.tenant, ended_before=datetime.now(UTC))
            == 1
        )

        cutoff = datetime.now(UTC)
        await asyncio.sleep(0.01)  # the information lands after the cutoff
        added = await intake.post(
            f"/v1/referrals/{escalated}/information",
            json={"text": "Gran, Mrs Smith, now looks after him"},
            headers=practitioner,
        )
        assert added.status_code == 200, added.text
        # Changed since the cutoff: kept, though submitted and first erased before it.
        assert await erase_ended_referrals(runtime.db, tenant=settings.tenant, ended_before=cutoff) == 0
        assert (
            await erase_ended_referrals(runtime.db, tenant=settings.tenant, ended_before=datetime.now(UTC))
            == 1
        )
        after = await runtime.db[REFERRALS].find_one({"_id": escalated})
        assert after is not None and after["erased_at"] is not None
        assert "Mrs Smith" not in str(after)
