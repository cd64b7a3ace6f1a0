"""Waiting times across intake and routing: agencies accept and start support, routing learns the wait."""

from __future__ import annotations

from contextlib import AsyncExitStack
from typing import Any

from signpost.intake.app import create_app as create_intake
from signpost.routing.app import create_app as create_routing
from signpost.routing.decisions.waiting import MIN_SAMPLES
from signpost.shared.settings import Settings

from tests.conftest import Tokens, eventually, serving
from tests.factories import referral

HEALTH_ONLY = {"family_agrees_to_early_help": True, "lawful_basis": "consent", "sharing_scope": ["health"]}


async def test_starts_teach_routing_the_waiting_time_it_then_explains(settings: Settings) -> None:
    tokens = Tokens(settings)
    practitioner = {"Authorization": f"Bearer {tokens.practitioner()}"}
    slt = {"Authorization": f"Bearer {tokens.agency('nhs-community-slt')}"}
    async with AsyncExitStack() as stack:
        intake = await stack.enter_async_context(serving(create_intake(settings)))
        routing = await stack.enter_async_context(serving(create_routing(settings)))

        async def routed(referral_id: str) -> dict[str, Any] | None:
            view = (await intake.get(f"/v1/referrals/{referral_id}", headers=practitioner)).json()
            return dict(view) if view["status"] == "routed" else None

        async def submit() -> dict[str, Any]:
            body = referral(need_codes=["SLCN"], consent=HEALTH_ONLY)
            created = await intake.post("/v1/referrals", json=body, headers=practitioner)
            referral_id = created.json()["id"]
            return await eventually(lambda: routed(referral_id), what="routed")

        async def waiting_weeks() -> float:
            return float((await routing.get("/v1/provisions/slt-community")).json()["waiting_weeks"])

        assert await waiting_weeks() == 6  # the starter catalogue's figure
        for _ in range(MIN_SAMPLES):
            view = await submit()
            assert [o["provision_id"] for o in view["offers"]] == ["slt-community"]
            assert "about 6 weeks' wait" in view["offers"][0]["explanation"]
            offer = f"/v1/referrals/{view['id']}/offers/slt-community"
            assert (await intake.post(f"{offer}/accept", headers=slt)).status_code == 200
            assert (await intake.post(f"{offer}/start", headers=slt)).status_code == 200

        # Each started within moments of its acceptance: the learnt wait is nothing at all.
        async def learnt() -> bool:
            return await waiting_weeks() == 0.0

        await eventually(learnt, what="the waiting time learnt from the starts")
        later = await submit()
        assert "about 0 weeks' wait" in later["offers"][0]["explanation"]
