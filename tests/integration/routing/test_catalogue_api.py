"""The Local Offer API on real servers: admin changes, searches, and provision.changed.v1 events."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
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

        fuller = {**created.json(), "capacity": {"available": 0, "maximum": 12}, "waiting_weeks": 10}
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


async def test_a_put_replaces_the_whole_provision_and_restores_only_when_told(
    settings: Settings,
) -> None:
    """A PUT that leaves fields out used to reset them to the model's defaults, a retired provision's
    `active` included (back in matching): now it is refused naming them. Retiring is retire's; a
    whole provision sent with `active: true` brings a retired one back, as asked."""
    admin = {"Authorization": f"Bearer {Tokens(settings).admin()}"}
    async with serving(create_routing(settings)) as routing:
        sent = {**PROVISION, "delivery_mode": "blended"}
        assert (await routing.post("/v1/provisions", json=sent, headers=admin)).status_code == 201
        path = f"/v1/provisions/{PROVISION['id']}"
        assert (await routing.post(f"{path}/retire", headers=admin)).status_code == 200
        read = (await routing.get(path)).json()
        sent_only = (
            "id",
            "name",
            "organisation",
            "organisation_id",
            "sector",
            "need_codes",
            "min_age",
            "max_age",
            "localities",
        )
        partial = {field: read[field] for field in sent_only}  # what the model requires, as the audit sent

        refused = await routing.put(path, json=partial, headers=admin)

        assert refused.status_code == 422, refused.text
        named = [problem["field"] for problem in refused.json()["detail"]]
        assert named == [f"body.{field}" for field in read if field not in partial]
        assert "body.active" in named and "body.capacity" in named
        edited = await routing.put(path, json={**read, "waiting_weeks": 9}, headers=admin)
        assert edited.status_code == 200, edited.text
        assert edited.json() == {**read, "waiting_weeks": 9}  # still retired, blended, with its places
        restored = await routing.put(path, json={**edited.json(), "active": True}, headers=admin)
        assert restored.status_code == 200 and restored.json()["active"] is True, restored.text

        live = (await routing.get("/v1/provisions/slt-community")).json()
        retiring = await routing.put(
            "/v1/provisions/slt-community", json={**live, "active": False}, headers=admin
        )
        assert retiring.status_code == 409, retiring.text
        assert retiring.json()["detail"] == (
            "a PUT does not retire a provision: POST /v1/provisions/slt-community/retire does"
        )


async def test_blank_text_in_a_provision_is_refused_naming_the_field(settings: Settings) -> None:
    admin = {"Authorization": f"Bearer {Tokens(settings).admin()}"}
    async with serving(create_routing(settings)) as routing:
        read = (await routing.get("/v1/provisions/slt-community")).json()
        blanks: list[tuple[str, dict[str, Any]]] = [
            ("name", {"name": "   "}),
            ("organisation", {"organisation": "  "}),
            ("cost", {"cost": " "}),
            ("localities.0", {"localities": ["   "]}),
            ("contact.email", {"contact": {"email": " "}}),
            ("contact.phone", {"contact": {"phone": "\u00a0"}}),
            ("contact.url", {"contact": {"url": ""}}),
        ]
        for field, blank in blanks:
            created = await routing.post("/v1/provisions", json={**PROVISION, **blank}, headers=admin)
            updated = await routing.put("/v1/provisions/slt-community", json={**read, **blank}, headers=admin)
            for answer in (created, updated):
                assert answer.status_code == 422, (field, answer.text)
                assert answer.json()["detail"] == [{"field": f"body.{field}", "message": "must not be blank"}]
        assert (await routing.get("/v1/provisions/slt-community")).json() == read


async def test_an_if_match_that_is_no_etag_of_ours_is_refused_naming_the_header(settings: Settings) -> None:
    """Such a tag could never match: it used to be answered 412, "changed since", even when current."""
    admin = {"Authorization": f"Bearer {Tokens(settings).admin()}"}
    async with serving(create_routing(settings)) as routing:
        read = await routing.get("/v1/provisions/slt-community")
        tag = read.headers["ETag"]
        for sent in ["garbage", f"W/{tag}", tag.strip('"'), "", '"not-ours"', f"{tag}, W/{tag}"]:
            refused = await routing.put(
                "/v1/provisions/slt-community", json=read.json(), headers={**admin, "If-Match": sent}
            )
            assert refused.status_code == 422, (sent, refused.text)
            [problem] = refused.json()["detail"]
            assert problem["field"] == "header.If-Match" and '"7"' in problem["message"], sent
        assert (await routing.get("/v1/provisions/slt-community")).headers["ETag"] == tag
        current = await routing.put(
            "/v1/provisions/slt-community", json=read.json(), headers={**admin, "If-Match": f" {tag} "}
        )
        assert current.status_code == 200, current.text


async def test_a_capacity_stated_as_of_a_time_to_come_is_refused(settings: Settings) -> None:
    """One stored as of 2099 would make every later figure stated as of now look stale (412)."""
    admin = {"Authorization": f"Bearer {Tokens(settings).admin()}"}
    async with serving(create_routing(settings)) as routing:
        read = (await routing.get("/v1/provisions/slt-community")).json()
        now = datetime.now(UTC)
        for ahead in [timedelta(minutes=6), timedelta(days=365 * 70)]:
            capacity = {**read["capacity"], "updated": (now + ahead).isoformat()}
            created = await routing.post(
                "/v1/provisions", json={**PROVISION, "capacity": capacity}, headers=admin
            )
            updated = await routing.put(
                "/v1/provisions/slt-community", json={**read, "capacity": capacity}, headers=admin
            )
            for answer in (created, updated):
                assert answer.status_code == 422, (ahead, answer.text)
                assert [p["field"] for p in answer.json()["detail"]] == ["body.capacity.updated"]
        within_skew = {**read["capacity"], "updated": (now + timedelta(minutes=1)).isoformat()}
        stated = await routing.put(
            "/v1/provisions/slt-community", json={**read, "capacity": within_skew}, headers=admin
        )
        assert stated.status_code == 200, stated.text


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
            if record.key == f"{settings.tenant}|{provision_id}".encode():  # keyed by area and id
                changes.append(json.loads(record.value)["change"])
    finally:
        await consumer.stop()
    return changes
