"""The Local Offer API on real servers: admin changes, searches, and provision.changed.v1 events."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiokafka import AIOKafkaConsumer
from signpost.routing.app import create_app as create_routing
from signpost.shared.settings import Settings
from signpost.shared.topics import Topics

from tests.conftest import Tokens, serving

PROVISION: dict[str, Any] = {
    "id": "portage-home-visiting",
    "name": "Portage home visiting",
    "organisation": "Local authority early years SEND team",
    "organisation_id": "la-early-years-send",
    "sector": "education",
    "need_codes": ["SLD", "PMLD", "MSI"],
    "min_age": 0,
    "max_age": 5,
    "localities": ["Ashley", "Bedminster"],
    "levels_of_need": ["early_help", "targeted", "specialist"],
    "delivery_mode": "in_person",
    "capacity": {"available": 3, "maximum": 12},
    "waiting_weeks": 4,
}


async def test_admins_change_the_catalogue_and_every_change_is_an_event(settings: Settings) -> None:
    tokens = Tokens(settings)
    admin = {"Authorization": f"Bearer {tokens.admin()}"}
    async with serving(create_routing(settings)) as routing:
        assert (await routing.post("/v1/provisions", json=PROVISION)).status_code == 401
        practitioner = {"Authorization": f"Bearer {tokens.practitioner()}"}
        assert (await routing.post("/v1/provisions", json=PROVISION, headers=practitioner)).status_code == 403

        created = await routing.post("/v1/provisions", json=PROVISION, headers=admin)
        assert created.status_code == 201, created.text
        again = await routing.post("/v1/provisions", json=PROVISION, headers=admin)
        assert again.status_code == 409

        fuller = {**PROVISION, "capacity": {"available": 0, "maximum": 12}, "waiting_weeks": 10}
        updated = await routing.put(f"/v1/provisions/{PROVISION['id']}", json=fuller, headers=admin)
        assert updated.status_code == 200 and updated.json()["capacity"]["available"] == 0
        mismatch = await routing.put("/v1/provisions/other-id", json=fuller, headers=admin)
        assert mismatch.status_code == 422 and mismatch.json()["detail"][0]["field"] == "body.id"
        retired = await routing.post(f"/v1/provisions/{PROVISION['id']}/retire", headers=admin)
        assert retired.status_code == 200 and retired.json()["active"] is False
        missing = await routing.post("/v1/provisions/no-such-thing/retire", headers=admin)
        assert missing.status_code == 404

        search = (
            await routing.get("/v1/provisions", params={"need_code": "PMLD", "locality": "Ashley"})
        ).json()
        assert [p["id"] for p in search["items"]] == ["portage-home-visiting"]
        assert (await routing.get("/v1/provisions", params={"q": "portage", "active": "true"})).json()[
            "total"
        ] == 0
        by_need = (await routing.get("/v1/provisions", params={"need_code": "SLCN"})).json()
        assert {p["id"] for p in by_need["items"]} == {
            "slt-community",
            "autism-outreach",
        }  # the starter catalogue

        bad = await routing.post(
            "/v1/provisions", json={**PROVISION, "id": "x", "min_age": 9, "max_age": 3}, headers=admin
        )
        assert bad.status_code == 422 and "min_age 9 is above max_age 3" in bad.json()["detail"][0]["message"]
        for field, capacity in [
            ("maximum", {"available": 0, "maximum": 10**20}),
            ("available", {"available": 10**20, "maximum": 12}),
        ]:
            vast = await routing.post(
                "/v1/provisions", json={**PROVISION, "id": "vast", "capacity": capacity}, headers=admin
            )
            assert vast.status_code == 422, vast.text  # not a 500 from BSON's 64-bit integers
            assert vast.json()["detail"][0]["field"] == f"body.capacity.{field}"
            assert "must be at most 1,000,000 places" in vast.json()["detail"][0]["message"]

    changes = await read_changes(settings, PROVISION["id"], expected=3)
    assert changes == ["created", "updated", "retired"]


async def read_changes(settings: Settings, provision_id: str, *, expected: int) -> list[str]:
    consumer = AIOKafkaConsumer(
        Topics.from_settings(settings).provisions,
        bootstrap_servers=settings.kafka_bootstrap,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    changes: list[str] = []
    try:
        while len(changes) < expected:
            record = await asyncio.wait_for(consumer.getone(), timeout=30)
            headers = {k: v.decode() for k, v in record.headers}
            assert headers["ce_type"] == "uk.signpost.provision.changed.v1"
            if record.key == provision_id.encode():
                changes.append(json.loads(record.value)["change"])
    finally:
        await consumer.stop()
    return changes
