"""The loop across intake and routing: a decline is re-routed, acceptance holds a place, withdrawal frees it."""

from __future__ import annotations

from contextlib import AsyncExitStack
from typing import Any

import httpx
from signpost.intake.app import create_app as create_intake
from signpost.routing.app import create_app as create_routing
from signpost.shared.logging import CORRELATION_HEADER
from signpost.shared.settings import Settings
from signpost.shared.topics import Topics

from tests.conftest import Tokens, eventually, serving
from tests.factories import referral
from tests.integration.records import headers_of, records_on

# Request ids as a caller may supply them (hex and dashes).
# Correlation ids a caller sends (UUIDs: anything else is replaced by a new one).
SUBMISSION, DECLINE, ACCEPTANCE = (f"00000000-0000-4000-8000-00000000000{n}" for n in (1, 2, 3))

HEALTH_ONLY = {"family_agrees_to_early_help": True, "lawful_basis": "consent", "sharing_scope": ["health"]}


async def test_decline_reroutes_acceptance_reserves_and_withdrawal_releases(settings: Settings) -> None:
    tokens = Tokens(settings)
    practitioner = {"Authorization": f"Bearer {tokens.practitioner()}"}
    slt = {"Authorization": f"Bearer {tokens.agency('nhs-community-slt')}"}
    inclusion = {"Authorization": f"Bearer {tokens.agency('la-inclusion-service')}"}
    admin = {"Authorization": f"Bearer {tokens.admin()}"}
    async with AsyncExitStack() as stack:
        intake = await stack.enter_async_context(serving(create_intake(settings)))
        routing = await stack.enter_async_context(serving(create_routing(settings)))

        async def view(referral_id: str) -> dict[str, Any]:
            return dict((await intake.get(f"/v1/referrals/{referral_id}", headers=practitioner)).json())

        async def places(provision_id: str) -> int:
            return int((await routing.get(f"/v1/provisions/{provision_id}")).json()["capacity"]["available"])

        referral_id = (
            await intake.post(
                "/v1/referrals",
                json=referral(need_codes=["SLCN"]),
                headers={**practitioner, CORRELATION_HEADER: SUBMISSION},
            )
        ).json()["id"]
        first = await eventually(
            lambda: _when(view(referral_id), lambda v: v["status"] == "routed"), what="routed"
        )
        assert [o["provision_id"] for o in first["offers"]] == ["slt-community"]

        declined = await intake.post(
            f"/v1/referrals/{referral_id}/offers/slt-community/decline",
            json={"reason": "no_capacity"},
            headers={**slt, CORRELATION_HEADER: DECLINE},
        )
        assert declined.status_code == 200 and declined.json()["status"] == "declined"
        rerouted = await eventually(
            lambda: _when(view(referral_id), lambda v: len(v["offers"]) == 2),
            what="re-routed after the decline",
        )
        assert [(o["provision_id"], o["status"]) for o in rerouted["offers"]] == [
            ("slt-community", "declined"),
            ("autism-outreach", "routed"),
        ]
        assert rerouted["status"] == "routed"
        # A decision is one child's needs and offers: admins only, the others follow it in intake.
        assert (await routing.get(f"/v1/decisions/{referral_id}")).status_code == 401
        for caller in (practitioner, slt):
            assert (await routing.get(f"/v1/decisions/{referral_id}", headers=caller)).status_code == 403
        decision = (await routing.get(f"/v1/decisions/{referral_id}", headers=admin)).json()
        assert [o["provision_id"] for o in decision["data"]["offers"]] == ["slt-community"]
        [again] = decision[
            "reroutes"
        ]  # routing's own record shows the re-routing, not only the first decision
        assert again["type"] == "uk.signpost.referral.routed.v1"
        assert again["data"]["replaces_provision_id"] == "slt-community"
        assert [o["provision_id"] for o in again["data"]["offers"]] == ["autism-outreach"]

        before = await places("autism-outreach")
        accepted = await intake.post(
            f"/v1/referrals/{referral_id}/offers/autism-outreach/accept",
            headers={**inclusion, CORRELATION_HEADER: ACCEPTANCE},
        )
        assert accepted.status_code == 200
        await eventually(
            lambda: _when(places("autism-outreach"), lambda n: n == before - 1), what="a place held"
        )
        withdrawn = await intake.post(
            f"/v1/referrals/{referral_id}/withdraw", json={"reason": "moved_away"}, headers=practitioner
        )
        assert withdrawn.status_code == 200
        await eventually(
            lambda: _when(places("autism-outreach"), lambda n: n == before), what="the place freed"
        )
        # A correlation id is one request's chain (docs/operations.md): a decision shares its cause's,
        # each later request has its own, and the referral id (key and ce_subject) follows them all.
        records = await records_on(settings, Topics.from_settings(settings).referrals)
        chain = [
            (headers["ce_type"].rpartition(".referral.")[2], headers["ce_correlationid"])
            for record in records
            if record.key == referral_id.encode()
            and (headers := headers_of(record))["ce_subject"] == referral_id
        ]
        assert chain[:5] == [
            ("submitted.v1", SUBMISSION),
            ("routed.v1", SUBMISSION),
            ("offer_declined.v1", DECLINE),
            ("routed.v1", DECLINE),
            ("offer_accepted.v1", ACCEPTANCE),
        ]

        # Health only: nothing else in health covers SLCN, so the decline leaves the need unmet.
        second = (
            await intake.post(
                "/v1/referrals", json=referral(need_codes=["SLCN"], consent=HEALTH_ONLY), headers=practitioner
            )
        ).json()["id"]
        await eventually(lambda: _when(view(second), lambda v: v["status"] == "routed"), what="routed")
        await intake.post(
            f"/v1/referrals/{second}/offers/slt-community/decline",
            json={"reason": "not_eligible"},
            headers=slt,
        )
        unmet = await eventually(
            lambda: _when(view(second), lambda v: v["status"] == "unmatched"), what="unmatched"
        )
        assert unmet["unmet_needs"] == ["SLCN"]
        [gave_up] = (await routing.get(f"/v1/decisions/{second}", headers=admin)).json()["reroutes"]
        assert gave_up["type"] == "uk.signpost.referral.unmatched.v1"
        assert gave_up["data"]["declined_provision_id"] == "slt-community"


async def _when(value: Any, accept: Any) -> Any:
    result = await value
    return result if accept(result) else None


async def test_unknown_clients_get_the_public_catalogue(settings: Settings) -> None:
    async with serving(create_routing(settings)) as routing:
        response = await routing.get("/v1/provisions/slt-community")
        assert response.status_code == 200 and response.json()["capacity"]["maximum"] == 20
        assert isinstance(routing, httpx.AsyncClient)


async def test_specialist_need_after_a_failed_graduated_approach_recommends_an_ehc_assessment(
    settings: Settings,
) -> None:
    practitioner = {"Authorization": f"Bearer {Tokens(settings).practitioner()}"}
    tried = {"cycles_completed": 3, "summary": "Three APDR cycles with SALT input", "worked": False}
    body = referral(level_of_need="specialist", graduated_approach=tried)
    async with AsyncExitStack() as stack:
        intake = await stack.enter_async_context(serving(create_intake(settings)))
        await stack.enter_async_context(serving(create_routing(settings)))
        referral_id = (await intake.post("/v1/referrals", json=body, headers=practitioner)).json()["id"]

        async def seen() -> dict[str, Any]:
            return dict((await intake.get(f"/v1/referrals/{referral_id}", headers=practitioner)).json())

        escalated = await eventually(
            lambda: _when(seen(), lambda v: v["status"] == "escalated"), what="escalated"
        )
        assert escalated["escalation_reason"] == "ehc_assessment" and escalated["offers"] == []
