"""Every role against every intake endpoint, for its own organisation's referral and another's."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import pytest_asyncio

from tests.conftest import Tokens, eventually
from tests.factories import referral

pytestmark = pytest.mark.asyncio(loop_scope="module")

OWN_SCHOOL, OTHER_SCHOOL = "school-ashley-primary", "school-elsewhere"
OFFERED, NOT_OFFERED = "la-inclusion-service", "nhs-community-slt"  # ASD+SLCN goes to autism outreach
COMPLETION = {"outcome": "needs_met", "needs_profile_after": {"communication_and_interaction": 1}}
OFFER = "/v1/referrals/{rid}/offers/autism-outreach"

# (method, path, body, writes): writes get a fresh referral whenever they are expected to succeed.
ENDPOINTS: dict[str, tuple[str, str, dict[str, Any] | None, bool]] = {
    "submit": ("POST", "/v1/referrals", referral(), True),
    "list": ("GET", "/v1/referrals", None, False),
    "read": ("GET", "/v1/referrals/{rid}", None, False),
    "child": ("GET", "/v1/referrals/{rid}/child?purpose=contact_family", None, False),
    "information": ("POST", "/v1/referrals/{rid}/information", {"text": "an update"}, True),
    "withdraw": ("POST", "/v1/referrals/{rid}/withdraw", {"reason": "needs_met"}, True),
    "offers": ("GET", "/v1/offers", None, False),
    "accept": ("POST", f"{OFFER}/accept", None, True),
    "decline": ("POST", f"{OFFER}/decline", {"reason": "no_capacity"}, True),
    "start": ("POST", f"{OFFER}/start", None, True),
    "complete": ("POST", f"{OFFER}/complete", COMPLETION, True),
    "audit": ("GET", "/v1/audit", None, False),
}

CALLERS = {
    "practitioner/own": ("practitioner", OWN_SCHOOL),
    "practitioner/other": ("practitioner", OTHER_SCHOOL),
    "agency/offered": ("agency", OFFERED),
    "agency/not-offered": ("agency", NOT_OFFERED),
    "analyst": ("analyst", "la-insight"),
    "ops": ("ops", "la-digital"),
    "admin": ("admin", "la-digital"),
}

P_OWN, P_OTHER, A_OFFERED, A_OTHER, ANALYST, OPS, ADMIN = CALLERS
# Expected status per endpoint and caller; 404 where a caller may not even know the referral exists.
MATRIX: dict[str, dict[str, int]] = {
    "submit": {P_OWN: 201, P_OTHER: 201, A_OFFERED: 403, A_OTHER: 403, ANALYST: 403, OPS: 403, ADMIN: 403},
    "list": {P_OWN: 200, P_OTHER: 200, A_OFFERED: 200, A_OTHER: 200, ANALYST: 403, OPS: 403, ADMIN: 200},
    "read": {P_OWN: 200, P_OTHER: 404, A_OFFERED: 200, A_OTHER: 404, ANALYST: 403, OPS: 403, ADMIN: 200},
    "child": {P_OWN: 200, P_OTHER: 404, A_OFFERED: 200, A_OTHER: 404, ANALYST: 403, OPS: 403, ADMIN: 403},
    "information": {
        P_OWN: 200,
        P_OTHER: 404,
        A_OFFERED: 403,
        A_OTHER: 403,
        ANALYST: 403,
        OPS: 403,
        ADMIN: 403,
    },
    "withdraw": {P_OWN: 200, P_OTHER: 404, A_OFFERED: 403, A_OTHER: 403, ANALYST: 403, OPS: 403, ADMIN: 403},
    "offers": {P_OWN: 403, P_OTHER: 403, A_OFFERED: 200, A_OTHER: 200, ANALYST: 403, OPS: 403, ADMIN: 403},
    "accept": {P_OWN: 403, P_OTHER: 403, A_OFFERED: 200, A_OTHER: 404, ANALYST: 403, OPS: 403, ADMIN: 403},
    "decline": {P_OWN: 403, P_OTHER: 403, A_OFFERED: 200, A_OTHER: 404, ANALYST: 403, OPS: 403, ADMIN: 403},
    # start and complete succeed only from the right state; the role checks come first.
    "start": {P_OWN: 403, P_OTHER: 403, A_OFFERED: 409, A_OTHER: 404, ANALYST: 403, OPS: 403, ADMIN: 403},
    "complete": {P_OWN: 403, P_OTHER: 403, A_OFFERED: 409, A_OTHER: 404, ANALYST: 403, OPS: 403, ADMIN: 403},
    "audit": {P_OWN: 403, P_OTHER: 403, A_OFFERED: 403, A_OTHER: 403, ANALYST: 403, OPS: 403, ADMIN: 200},
}


async def routed_referral(intake: httpx.AsyncClient, tokens: Tokens) -> str:
    practitioner = {"Authorization": f"Bearer {tokens.practitioner(OWN_SCHOOL)}"}
    referral_id = str(
        (await intake.post("/v1/referrals", json=referral(), headers=practitioner)).json()["id"]
    )

    async def routed() -> bool:
        found = (await intake.get(f"/v1/referrals/{referral_id}", headers=practitioner)).json()
        return bool(found["status"] == "routed")

    await eventually(routed, what="referral routed")
    return referral_id


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def shared_referral(intake: httpx.AsyncClient, tokens: Tokens) -> str:
    return await routed_referral(intake, tokens)


@pytest.mark.parametrize("caller", list(CALLERS))
@pytest.mark.parametrize("endpoint", list(ENDPOINTS))
async def test_authorisation_matrix(
    intake: httpx.AsyncClient, tokens: Tokens, shared_referral: str, endpoint: str, caller: str
) -> None:
    method, path, body, writes = ENDPOINTS[endpoint]
    expected = MATRIX[endpoint][caller]
    referral_id = await routed_referral(intake, tokens) if writes and expected < 300 else shared_referral
    role, organisation = CALLERS[caller]
    headers = {"Authorization": f"Bearer {tokens.token(role, organisation)}"}
    response = await intake.request(method, path.format(rid=referral_id), json=body, headers=headers)
    assert response.status_code == expected, response.text


@pytest.mark.parametrize("endpoint", list(ENDPOINTS))
async def test_every_endpoint_needs_a_token_for_this_area(
    intake: httpx.AsyncClient, tokens: Tokens, shared_referral: str, endpoint: str
) -> None:
    method, path, body, _ = ENDPOINTS[endpoint]
    url = path.format(rid=shared_referral)
    assert (await intake.request(method, url, json=body)).status_code == 401
    other_area = {"Authorization": f"Bearer {tokens.token('admin', 'la-digital', tenant='E08000035')}"}
    assert (await intake.request(method, url, json=body, headers=other_area)).status_code == 403
