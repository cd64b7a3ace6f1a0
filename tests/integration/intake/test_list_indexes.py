"""Intake's lists on years of history: each filter a caller may give is read from an index that
holds it and the sort, so a page reads its own documents and no others."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest_asyncio
import uuid6
from pymongo import AsyncMongoClient
from signpost.intake.app import INDEXES
from signpost.intake.audit.service import AUDIT
from signpost.intake.offers.keys import offer_keys
from signpost.intake.offers.service import list_offers
from signpost.intake.referrals.models import REFERRALS
from signpost.shared.auth.principal import Principal, Role
from signpost.shared.lifecycle import ReferralStatus
from signpost.shared.mongo import Database, Document
from signpost.shared.service import Runtime
from signpost.shared.settings import Settings

from tests.commands import watched
from tests.plans import scanned
from tests.servers import MongoServer

TENANT = "t"


@pytest_asyncio.fixture
async def db(mongodb: MongoServer) -> AsyncIterator[Database]:
    client: AsyncMongoClient[Document] = AsyncMongoClient(mongodb.url, tz_aware=True)
    db = client[f"t{uuid6.uuid7().hex[-10:]}"]
    await INDEXES.apply(db)
    try:
        yield db
    finally:
        await client.drop_database(db.name)
        await client.close()


async def test_the_audit_trail_by_time_alone_is_read_from_an_index(db: Database) -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    await db[AUDIT].insert_many(
        [
            {
                "_id": str(uuid6.uuid7()),
                "tenant": TENANT,
                "at": start + timedelta(hours=n),
                "subject": f"s{n % 5}",
                "referral_id": f"r{n % 7}",
            }
            for n in range(60)
        ]
    )
    # As audit.service.find_records asks with no referral or subject: the tenant, maybe a window.
    for window in [{}, {"at": {"$gte": start + timedelta(hours=10), "$lt": start + timedelta(hours=50)}}]:
        found = db[AUDIT].find({"tenant": TENANT, **window}).sort("at", -1).limit(5)
        scans, stats = await scanned(found)
        assert scans == [{"tenant": 1, "at": -1}]
        assert stats["totalDocsExamined"] == stats["totalKeysExamined"]


async def test_an_admins_referrals_by_setting_locality_or_need_are_read_from_an_index(db: Database) -> None:
    await db[REFERRALS].insert_many(
        [
            {
                "_id": str(uuid6.uuid7()),
                "tenant": TENANT,
                "organisation": f"o{n % 3}",
                "status": "routed",
                "setting_id": f"s{n % 4}",
                "locality": f"l{n % 5}",
                "need_codes": [f"n{n % 6}", f"n{(n + 1) % 6}"],
                "offers": [],
            }
            for n in range(60)
        ]
    )
    # As referrals.views.list_referrals asks an admin's page with one of these filters.
    for field, value, index in [
        ("setting_id", "s1", {"tenant": 1, "setting_id": 1, "_id": -1}),
        ("locality", "l2", {"tenant": 1, "locality": 1, "_id": -1}),
        ("need_codes", "n3", {"tenant": 1, "need_codes": 1, "_id": -1}),
    ]:
        scans, stats = await scanned(
            db[REFERRALS].find({"tenant": TENANT, field: value}).sort("_id", -1).limit(5)
        )
        assert scans == [index], field
        assert stats["totalDocsExamined"] == stats["totalKeysExamined"], field


async def test_an_agencys_inbox_by_status_reads_only_the_referrals_it_lists(
    db: Database, mongodb: MongoServer
) -> None:
    """Years of offers to one agency, most long finished: its poll for what is offered now reads
    those referrals alone, from an index, however long the history."""
    history = ["completed"] * 40 + ["declined"] * 10 + ["routed"] * 3

    def offer(organisation: str, status: str) -> Document:
        return {"organisation_id": organisation, "provision_id": f"{organisation}-p", "status": status}

    referrals = []
    for status in history:
        offers = [offer("agency", status), offer("another", "routed")]
        referrals.append(
            {"_id": str(uuid6.uuid7()), "tenant": TENANT, "offers": offers, "offer_keys": offer_keys(offers)}
        )
    await db[REFERRALS].insert_many(referrals)
    settings = Settings(_env_file=None, mongodb_url=mongodb.url, kafka_bootstrap="127.0.0.1:9", tenant=TENANT)
    built = Runtime.build(settings, "intake")
    await built.client.close()
    async with watched(built, db) as (runtime, sent):
        agency = Principal(subject="s", role=Role.AGENCY, organisation="agency", tenant=TENANT)
        pairs, _ = await list_offers(
            runtime=runtime, principal=agency, status=ReferralStatus.ROUTED, limit=5, cursor=None
        )
        assert [r["_id"] for r, _ in pairs] == [r["_id"] for r in reversed(referrals[-3:])]

        (find,) = sent.named("find", REFERRALS)  # the very query the inbox sent
        scans, stats = await scanned(
            db[REFERRALS].find(find["filter"]).sort(find["sort"]).limit(find["limit"])
        )
        assert scans == [{"tenant": 1, "offer_keys": 1, "_id": -1}]
        assert stats["totalDocsExamined"] == 3
