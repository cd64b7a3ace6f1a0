"""`GET /v1/decisions/{id}` answers this area's decisions only: one another area stored in the same
database (as two areas sharing one before the start-up claim would have) is not found."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
from signpost.routing.app import create_app as create_routing
from signpost.routing.decisions.service import DECISIONS
from signpost.shared.settings import Settings

from tests.conftest import Tokens

OTHER_AREA = "E06000022"


def decision(referral_id: str, tenant: str) -> dict[str, object]:
    return {"_id": referral_id, "tenant": tenant, "type": "uk.signpost.referral.unmatched.v1",
            "event_id": f"e-{referral_id}", "decided_at": datetime.now(UTC), "data": {}}  # fmt: skip


async def test_another_areas_decision_is_not_found(settings: Settings) -> None:
    app = create_routing(settings)  # no lifespan: the read needs neither Kafka nor the catalogue
    db = app.state.runtime.db
    await db[DECISIONS].insert_many([decision("ours", settings.tenant), decision("theirs", OTHER_AREA)])
    admin = {"Authorization": f"Bearer {Tokens(settings).admin()}"}
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://signpost.test") as routing:
            assert (await routing.get("/v1/decisions/ours", headers=admin)).status_code == 200
            assert (await routing.get("/v1/decisions/theirs", headers=admin)).status_code == 404
    finally:
        await app.state.runtime.client.close()
