"""One local area per database set: a service, `signpost migrate` and `signpost run --service` refuse
a database another area's deployment claimed (two areas on one MongoDB with the same prefix)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from pymongo import AsyncMongoClient
from signpost.intake.app import create_app as create_intake
from signpost.intake.referrals.models import REFERRALS
from signpost.routing.app import create_app as create_routing
from signpost.routing.catalogue.models import PROVISIONS
from signpost.shared.area import AREA, OWNER_ID, DatabaseOfAnotherArea, claim_database
from signpost.shared.mongo import Document
from signpost.shared.settings import Settings

from signpost.platform.cli import main
from tests.conftest import Tokens, serving
from tests.integration.routing.test_catalogue_api import PROVISION

OTHER_AREA = "E06000022"


def other_area(settings: Settings) -> Settings:
    assert settings.tenant != OTHER_AREA
    return settings.model_copy(update={"tenant": OTHER_AREA})


def area_env(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> None:
    for name, value in {
        "SIGNPOST_TENANT": settings.tenant,
        "SIGNPOST_KAFKA_BOOTSTRAP": settings.kafka_bootstrap or "",
        "SIGNPOST_KAFKA_IDEMPOTENCE": str(settings.kafka_idempotence).lower(),
        "SIGNPOST_MONGODB_URL": settings.mongodb_url or "",
        "SIGNPOST_TOPIC_PREFIX": settings.topic_prefix,
        "SIGNPOST_TOPIC_PARTITIONS": str(settings.topic_partitions),
        "SIGNPOST_DATABASE_PREFIX": settings.database_prefix,
        "SIGNPOST_AUTH_DEV_KEY_FILE": str(settings.dev_key_file),
        "SIGNPOST_LOG_FORMAT": "json",
    }.items():
        monkeypatch.setenv(name, value)


def assert_names_both_areas_and_the_fix(message: str, settings: Settings, database: str) -> None:
    assert repr(database) in message
    assert repr(settings.tenant) in message and repr(OTHER_AREA) in message
    assert "SIGNPOST_DATABASE_PREFIX" in message


async def test_a_second_area_on_the_same_database_prefix_is_refused_at_start(settings: Settings) -> None:
    async with serving(create_intake(settings)) as intake:
        assert (await intake.get("/healthz")).status_code == 200

    with pytest.raises(DatabaseOfAnotherArea) as refused:
        async with serving(create_intake(other_area(settings))):
            pytest.fail("the other area's intake started on this area's database")

    assert_names_both_areas_and_the_fix(str(refused.value), settings, settings.database_name("intake"))
    async with serving(create_intake(settings)):  # the owner still starts
        pass


async def test_areas_with_their_own_prefixes_share_one_mongodb(settings: Settings) -> None:
    """Each area's routing claims its own database and keeps its catalogue there: a provision one
    area's admin adds is in that area's database alone, and the other area's routing knows nothing
    of it."""
    own_prefix = other_area(settings).model_copy(update={"database_prefix": f"{settings.database_prefix}b"})
    areas = {settings.tenant: settings, OTHER_AREA: own_prefix}
    names = {tenant: area.database_name("routing") for tenant, area in areas.items()}
    assert len(set(names.values())) == 2
    client: AsyncMongoClient[Document] = AsyncMongoClient(settings.mongodb_url, tz_aware=True)
    try:
        async with serving(create_routing(settings)) as here, serving(create_routing(own_prefix)) as there:
            routings = {settings.tenant: here, OTHER_AREA: there}
            for tenant, routing in routings.items():
                admin = {"Authorization": f"Bearer {Tokens(areas[tenant]).admin()}"}
                provision = {**PROVISION, "id": f"portage-{tenant.lower()}"}
                assert (
                    await routing.post("/v1/provisions", json=provision, headers=admin)
                ).status_code == 201
            for tenant, routing in routings.items():
                admin = {"Authorization": f"Bearer {Tokens(areas[tenant]).admin()}"}
                [other] = [t for t in areas if t != tenant]
                missing = await routing.get(f"/v1/provisions/portage-{other.lower()}", headers=admin)
                assert missing.status_code == 404

        for tenant, name in names.items():
            db = client[name]
            owner = await db[AREA].find_one({"_id": OWNER_ID})
            assert owner is not None and owner["tenant"] == tenant, name
            assert await db[AREA].count_documents({}) == 1
            stored = {document["_id"] async for document in db[PROVISIONS].find({}, {"_id": 1})}
            added = {f"portage-{area.lower()}" for area in areas}  # beside the starter catalogue
            assert stored & added == {f"portage-{tenant.lower()}"}, name
    finally:
        await client.drop_database(names[OTHER_AREA])
        await client.close()


async def test_a_database_from_before_the_claim_is_claimed_by_its_first_start(settings: Settings) -> None:
    client: AsyncMongoClient[Document] = AsyncMongoClient(settings.mongodb_url, tz_aware=True)
    db = client[settings.database_name("intake")]
    try:
        await db[REFERRALS].insert_one({"_id": "stored-by-an-earlier-release", "tenant": settings.tenant})
        async with serving(create_intake(settings)):
            pass
        owner = await db[AREA].find_one({"_id": OWNER_ID})
        assert owner is not None and owner["tenant"] == settings.tenant
        await claim_database(db, tenant=settings.tenant)  # the next start compares and goes on
        with pytest.raises(DatabaseOfAnotherArea):
            await claim_database(db, tenant=OTHER_AREA)
        assert await db[AREA].count_documents({}) == 1
    finally:
        await client.close()


def test_migrate_refuses_another_areas_databases(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    area_env(monkeypatch, settings)
    assert main(["migrate"]) == 0
    area_env(monkeypatch, other_area(settings))

    assert main(["migrate"]) == 2

    assert_names_both_areas_and_the_fix(capsys.readouterr().err, settings, settings.database_name("intake"))


def test_a_service_started_for_another_area_exits_with_the_reason(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    area_env(monkeypatch, settings)
    monkeypatch.setenv("SIGNPOST_ANALYTICS_PORT", "1")  # never bound: start-up stops before listening
    assert main(["migrate"]) == 0
    area_env(monkeypatch, other_area(settings))

    # In a process of its own: the reason is logged, and this process's loggers keep the stderr
    # of whichever test configured logging first, which pytest's capfd does not see.
    started = subprocess.run(
        [sys.executable, "-m", "signpost.platform.cli", "run", "--service", "analytics"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert started.returncode == 3, started.stderr  # uvicorn's exit for a failed start-up
    assert_names_both_areas_and_the_fix(started.stderr, settings, settings.database_name("analytics"))
