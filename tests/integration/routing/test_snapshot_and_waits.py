"""Routing's catalogue snapshot and the waiting times it learns, on a real MongoDB.

Two `CatalogueSnapshot`s on one database stand for two routing processes; every write
goes through the same service functions the running service uses.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest_asyncio
from signpost.routing.catalogue.models import PROVISIONS, Provision
from signpost.routing.catalogue.repository import ensure_version, seed_if_empty
from signpost.routing.catalogue.seed import STARTER_CATALOGUE
from signpost.routing.catalogue.service import save_provision
from signpost.routing.catalogue.snapshot import CatalogueSnapshot
from signpost.routing.decisions.service import on_referral_event
from signpost.routing.decisions.waiting import MIN_SAMPLES, WAITS
from signpost.routing.matching import Catalogue
from signpost.shared.auth.principal import Principal, Role
from signpost.shared.events import Envelope, EventData, OfferAcceptedV1, OfferStartedV1, new_event
from signpost.shared.outbox import OUTBOX
from signpost.shared.service import Runtime
from signpost.shared.settings import Settings

from tests.integration.routing.runtimes import decided, routing_runtime

ADMIN = Principal(subject="admin@la", role=Role.ADMIN, organisation="la-digital", tenant="E06000023")
ACCEPTED_AT = datetime(2026, 9, 1, 9, 30, tzinfo=UTC)
PORTAGE = Provision.model_validate(
    {
        "id": "portage-home-visiting",
        "name": "Portage home visiting",
        "organisation": "Local authority early years SEND team",
        "organisation_id": "la-early-years-send",
        "sector": "education",
        "need_codes": ["SLD", "PMLD"],
        "min_age": 0,
        "max_age": 5,
        "localities": ["Ashley"],
        "capacity": {"available": 3, "maximum": 12},
    }
)


@pytest_asyncio.fixture
async def runtime(settings: Settings) -> AsyncIterator[Runtime]:
    """No broker needed."""
    async with routing_runtime(settings, STARTER_CATALOGUE) as runtime:
        yield runtime


def places(catalogue: Catalogue, provision_id: str) -> int | None:
    provision = next(p for p in catalogue.provisions if p.id == provision_id)
    return provision.capacity.available if provision.capacity else None


def offer_event(data: OfferAcceptedV1 | OfferStartedV1) -> Envelope[EventData]:
    return new_event(data, source="/signpost/intake", tenant="E06000023")


async def test_every_routing_process_sees_every_catalogue_change(runtime: Runtime) -> None:
    one, two = CatalogueSnapshot(), CatalogueSnapshot()
    first = await one.current(runtime.db)
    assert {p.id for p in first.provisions} == {p.id for p in STARTER_CATALOGUE}
    assert await one.current(runtime.db) is first  # unchanged: nothing read back or rebuilt
    assert places(await two.current(runtime.db), "slt-community") == 6

    # The loop holds a place on acceptance: a capacity change, patched into the snapshot.
    await decided(runtime, "r-1", "slt-community")
    accepted = OfferAcceptedV1(
        referral_id="r-1", provision_id="slt-community", organisation_id="nhs-community-slt", at=ACCEPTED_AT
    )
    await on_referral_event(runtime=runtime, envelope=offer_event(accepted), catalogue=one)
    assert places(await two.current(runtime.db), "slt-community") == 5

    # An admin adds one provision and retires another: both seen, by both processes.
    await save_provision(runtime=runtime, provision=PORTAGE, change="created", principal=ADMIN)
    therapy = next(p for p in STARTER_CATALOGUE if p.id == "children-ot")
    retired = therapy.model_copy(update={"active": False})
    await save_provision(runtime=runtime, provision=retired, change="retired", principal=ADMIN)
    expected = {p.id for p in STARTER_CATALOGUE} - {"children-ot"} | {PORTAGE.id}
    for snapshot in (one, two):
        current = await snapshot.current(runtime.db)
        assert {p.id for p in current.provisions} == expected
        assert places(current, "slt-community") == 5

    # A catalogue recreated under a running process (a restored database) is read whole again.
    await runtime.client.drop_database(runtime.db.name)
    await ensure_version(runtime.db)
    await seed_if_empty(runtime.db, STARTER_CATALOGUE)
    restored = await one.current(runtime.db)
    assert {p.id for p in restored.provisions} == {p.id for p in STARTER_CATALOGUE}
    assert places(restored, "slt-community") == 6


async def test_waiting_time_is_learnt_from_acceptance_to_start_once_per_event(runtime: Runtime) -> None:
    snapshot = CatalogueSnapshot()
    therapy = "children-ot"  # 12 weeks in the starter catalogue
    starts = []
    for number, days in enumerate([7, 28, 14, 35, 21]):
        referral_id = f"r-wait-{number}"
        await decided(runtime, referral_id, therapy)
        common = {
            "referral_id": referral_id,
            "provision_id": therapy,
            "organisation_id": "nhs-community-therapies",
        }
        await on_referral_event(
            runtime=runtime,
            envelope=offer_event(OfferAcceptedV1(**common, at=ACCEPTED_AT)),
            catalogue=snapshot,
        )
        start = offer_event(OfferStartedV1(**common, at=ACCEPTED_AT + timedelta(days=days)))
        await on_referral_event(runtime=runtime, envelope=start, catalogue=snapshot)
        starts.append(start)
        provision = await runtime.db[PROVISIONS].find_one({"_id": therapy})
        assert provision is not None
        # Four waits are too few: the catalogue's 12 weeks stand; the fifth gives the median of 1, 4, 2, 5 and 3.
        assert provision["waiting_weeks"] == (12 if number < MIN_SAMPLES - 1 else 3.0)

    learnt = [
        o
        async for o in runtime.db[OUTBOX].find({"key": f"{runtime.settings.tenant}|{therapy}"})
        if b'"waiting_weeks":3.0' in o["value"]
    ]
    assert len(learnt) == 1  # stored with its provision.changed.v1 event
    assert places(await snapshot.current(runtime.db), therapy) == 0  # its three free places held
    waiting = next(
        p for p in (await snapshot.current(runtime.db)).provisions if p.id == therapy
    ).waiting_weeks
    assert waiting == 3.0

    # The same start delivered again changes nothing.
    outbox_before = await runtime.db[OUTBOX].count_documents({})
    waits_before = await runtime.db[WAITS].find({}, {"_id": 1, "weeks": 1}).sort("_id").to_list()
    await on_referral_event(runtime=runtime, envelope=starts[-1], catalogue=snapshot)
    assert await runtime.db[OUTBOX].count_documents({}) == outbox_before
    assert await runtime.db[WAITS].find({}, {"_id": 1, "weeks": 1}).sort("_id").to_list() == waits_before

    # A start delivered before its acceptance (intake's replicas each relay their own outbox)
    # teaches nothing yet; the acceptance arriving after it completes the wait: 10 weeks.
    late = {"referral_id": "r-late", "provision_id": therapy, "organisation_id": "nhs-community-therapies"}
    await decided(runtime, "r-late", therapy)
    await on_referral_event(
        runtime=runtime,
        envelope=offer_event(OfferStartedV1(**late, at=ACCEPTED_AT + timedelta(days=70))),
        catalogue=snapshot,
    )
    assert await runtime.db[WAITS].count_documents({"referral_id": "r-late", "weeks": {"$ne": None}}) == 0
    assert await waiting_weeks(runtime, therapy) == 3.0
    accepted = offer_event(OfferAcceptedV1(**late, at=ACCEPTED_AT))
    await on_referral_event(runtime=runtime, envelope=accepted, catalogue=snapshot)
    # The median of 1, 4, 2, 5, 3 and 10: 3.5, to the week.
    assert await waiting_weeks(runtime, therapy) == 4.0
    again = offer_event(OfferAcceptedV1(**late, at=ACCEPTED_AT + timedelta(days=1)))
    await on_referral_event(runtime=runtime, envelope=again, catalogue=snapshot)  # the first one counts
    wait = await runtime.db[WAITS].find_one({"_id": f"r-late:{therapy}"})
    assert wait is not None and wait["weeks"] == 10.0


async def waiting_weeks(runtime: Runtime, provision_id: str) -> float:
    provision = await runtime.db[PROVISIONS].find_one({"_id": provision_id})
    assert provision is not None
    return float(provision["waiting_weeks"])
