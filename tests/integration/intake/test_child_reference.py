"""The pseudonymous child reference on real servers: intake gives a child referred twice, their
details typed differently, one reference, and analytics counts the second referral a re-referral."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from signpost.analytics.app import create_app as create_analytics
from signpost.intake.app import create_app as create_intake
from signpost.shared.settings import Settings

from tests.conftest import Tokens, eventually, serving
from tests.factories import CHILD, referral

pytestmark = pytest.mark.asyncio


async def child_ref_of(intake: httpx.AsyncClient, headers: dict[str, str], child: dict[str, Any]) -> str:
    submitted = await intake.post("/v1/referrals", json=referral(child=child), headers=headers)
    assert submitted.status_code == 201, submitted.text
    view = await intake.get(submitted.headers["location"], headers=headers)
    return str(view.json()["child_ref"])


async def test_a_child_referred_twice_has_one_reference_and_is_counted_as_re_referred(
    settings: Settings,
) -> None:
    tokens = Tokens(settings)
    practitioner = {"Authorization": f"Bearer {tokens.practitioner()}"}
    async with serving(create_intake(settings)) as intake, serving(create_analytics(settings)) as analytics:
        first = await child_ref_of(intake, practitioner, CHILD)
        # The same child, typed by someone else: the NHS number unspaced, the name in capitals.
        again = await child_ref_of(
            intake, practitioner, {**CHILD, "nhs_number": "9434765919", "given_name": "ZEPHYRINE"}
        )
        # 401 023 2137 is another published test number with a valid check digit.
        another_child = await child_ref_of(intake, practitioner, {**CHILD, "nhs_number": "401 023 2137"})
        assert first == again != another_child

        admin = {"Authorization": f"Bearer {tokens.admin()}"}  # exact counts: no suppression under 5

        async def counted() -> dict[str, Any] | None:
            answer = await analytics.get("/v1/pulse/summary", headers=admin)
            if answer.status_code != 200:  # 503 while the index loads
                return None
            found = {item["measure"]: item["current"]["value"] for item in answer.json()["measures"]}
            return found if found["submitted"] == 3 else None

        found = await eventually(counted, what="three referrals counted")
        assert found["rereferred"] == 1
