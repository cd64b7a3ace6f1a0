"""A place routing holds is never counted free again by a catalogue change committed around it.

Most tests make routing's own handler hold a place while the catalogue's transaction is open,
after that transaction has read the provision and before it writes: a deterministic stand-in
for an offer accepted at the same moment as an admin's retirement or an import.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import httpx
import pytest
from signpost.routing.app import create_app as create_routing
from signpost.routing.catalogue.models import PROVISIONS
from signpost.routing.decisions.service import RESERVATIONS, track_capacity
from signpost.shared.events import Envelope, EventData, OfferAcceptedV1, new_event
from signpost.shared.mongo import Session
from signpost.shared.service import Runtime
from signpost.shared.settings import Settings

from tests.conftest import Tokens, serving
from tests.integration.routing.runtimes import decided
from tests.oruk_fixtures import oruk_service

T = TypeVar("T")


def hold_during_next_transaction(
    monkeypatch: pytest.MonkeyPatch, runtime: Runtime, provision_id: str
) -> None:
    """In the next transaction `runtime` opens, read the provision (its snapshot starts there),
    then let routing hold a place on it and commit, before the transaction's own work runs."""
    opened = runtime.transaction
    held = False

    async def transaction(work: Callable[[Session], Awaitable[T]]) -> T:
        async def interleaved(session: Session) -> T:
            nonlocal held
            if not held:
                held = True
                await runtime.db[PROVISIONS].find_one({"_id": provision_id}, session=session)
                await hold_a_place(runtime, provision_id)
            return await work(session)

        return await opened(interleaved)

    monkeypatch.setattr(runtime, "transaction", transaction)


async def hold_a_place(runtime: Runtime, provision_id: str, referral_id: str = "r-held") -> None:
    await decided(runtime, referral_id, provision_id)  # routing holds places for its own offers only
    accepted = OfferAcceptedV1(
        referral_id=referral_id,
        provision_id=provision_id,
        organisation_id="any-agency",
        at=datetime.now(UTC),
    )
    envelope: Envelope[EventData] = new_event(
        accepted, source="/signpost/intake", tenant=runtime.settings.tenant
    )
    await track_capacity(runtime=runtime, envelope=envelope)


async def available(routing: httpx.AsyncClient, provision_id: str) -> int:
    return int((await routing.get(f"/v1/provisions/{provision_id}")).json()["capacity"]["available"])


async def assert_held(runtime: Runtime, routing: httpx.AsyncClient, provision_id: str, before: int) -> None:
    assert await runtime.db[RESERVATIONS].count_documents({"provision_id": provision_id}) == 1
    assert await available(routing, provision_id) == before - 1


async def test_retiring_keeps_a_place_held_meanwhile(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    admin = {"Authorization": f"Bearer {Tokens(settings).admin()}"}
    app = create_routing(settings)
    runtime: Runtime = app.state.runtime
    async with serving(app) as routing:
        before = await available(routing, "slt-community")
        hold_during_next_transaction(monkeypatch, runtime, "slt-community")

        retired = await routing.post("/v1/provisions/slt-community/retire", headers=admin)

        assert retired.status_code == 200, retired.text
        assert retired.json()["active"] is False
        assert retired.json()["capacity"]["available"] == before - 1
        await assert_held(runtime, routing, "slt-community", before)


async def test_an_import_changing_another_field_keeps_a_place_held_meanwhile(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    admin = {"Authorization": f"Bearer {Tokens(settings).admin()}"}
    service: dict[str, Any] = oruk_service(1)
    app = create_routing(settings)
    runtime: Runtime = app.state.runtime
    async with serving(app) as routing:

        async def import_feed() -> dict[str, Any]:
            answer = await routing.post("/v1/catalogue/import", json={"feed": [service]}, headers=admin)
            assert answer.status_code == 200, answer.text
            return dict(answer.json()["totals"])

        assert (await import_feed())["created"] == 1
        before = await available(routing, service["id"])
        hold_during_next_transaction(monkeypatch, runtime, service["id"])
        service["name"] = "Talking Together speech group (renamed)"  # same capacity figure, no newer

        assert (await import_feed())["updated"] == 1

        provision = (await routing.get(f"/v1/provisions/{service['id']}")).json()
        assert provision["name"] == service["name"]
        await assert_held(runtime, routing, service["id"], before)


async def test_a_put_of_what_was_read_before_a_place_was_held_is_refused(settings: Settings) -> None:
    """GET (3 places) -> an acceptance holds one (2) -> PUT of the whole body read before, to edit
    the waiting time, would write 3 back: with If-Match it is refused, and a fresh read goes through."""
    admin = {"Authorization": f"Bearer {Tokens(settings).admin()}"}
    app = create_routing(settings)
    runtime: Runtime = app.state.runtime
    async with serving(app) as routing:
        read = await routing.get("/v1/provisions/slt-community")
        body, tag = read.json(), read.headers["ETag"]
        before = body["capacity"]["available"]
        await hold_a_place(runtime, "slt-community")

        stale = await routing.put(
            "/v1/provisions/slt-community",
            json={**body, "waiting_weeks": 7},
            headers={**admin, "If-Match": tag},
        )

        assert stale.status_code == 412, stale.text
        await assert_held(runtime, routing, "slt-community", before)
        again = await routing.get("/v1/provisions/slt-community")
        assert stale.headers["ETag"] == again.headers["ETag"] != tag
        assert again.json()["waiting_weeks"] == body["waiting_weeks"]

        fresh = await routing.put(
            "/v1/provisions/slt-community",
            json={**again.json(), "waiting_weeks": 7},
            headers={**admin, "If-Match": again.headers["ETag"]},
        )
        assert fresh.status_code == 200, fresh.text
        assert fresh.json()["waiting_weeks"] == 7
        await assert_held(runtime, routing, "slt-community", before)
        assert fresh.headers["ETag"] == (await routing.get("/v1/provisions/slt-community")).headers["ETag"]
        refused = await routing.put(
            "/v1/provisions/slt-community",
            json=fresh.json(),
            headers={**admin, "If-Match": again.headers["ETag"]},
        )
        assert refused.status_code == 412, refused.text
        listed = f'"0", {fresh.headers["ETag"]}'
        for match in [listed, "*"]:
            answer = await routing.put(
                "/v1/provisions/slt-community", json=fresh.json(), headers={**admin, "If-Match": match}
            )
            assert answer.status_code == 200, match


async def test_an_import_of_a_figure_stated_before_a_place_was_held_keeps_the_place(
    settings: Settings,
) -> None:
    """The provider's feed restates its capacity (3 places, newer than the figure imported before),
    but as of a time before routing held a place: the hold stands. A figure stated after it wins."""
    admin = {"Authorization": f"Bearer {Tokens(settings).admin()}"}
    service: dict[str, Any] = oruk_service(1)
    app = create_routing(settings)
    runtime: Runtime = app.state.runtime
    async with serving(app) as routing:

        async def import_feed(updated: datetime) -> None:
            service["capacities"][0]["updated"] = updated.isoformat()
            answer = await routing.post("/v1/catalogue/import", json={"feed": [service]}, headers=admin)
            assert answer.status_code == 200, answer.text

        await import_feed(datetime.now(UTC) - timedelta(days=2))
        before = await available(routing, service["id"])
        await hold_a_place(runtime, service["id"])

        await import_feed(datetime.now(UTC) - timedelta(days=1))
        await assert_held(runtime, routing, service["id"], before)

        await import_feed(datetime.now(UTC) + timedelta(seconds=1))
        assert await available(routing, service["id"]) == before


async def test_a_put_without_if_match_of_a_capacity_read_before_a_hold_is_refused(settings: Settings) -> None:
    """Without If-Match, the capacity's own `updated` (routing stamps it as it holds a place) shows
    that the body was read before the last hold: refused, not written back."""
    admin = {"Authorization": f"Bearer {Tokens(settings).admin()}"}
    app = create_routing(settings)
    runtime: Runtime = app.state.runtime
    async with serving(app) as routing:
        await hold_a_place(runtime, "slt-community", "r-first")
        body = (await routing.get("/v1/provisions/slt-community")).json()
        assert body["capacity"]["updated"] is not None
        before = body["capacity"]["available"]
        await hold_a_place(runtime, "slt-community", "r-second")

        stale = await routing.put(
            "/v1/provisions/slt-community", json={**body, "waiting_weeks": 7}, headers=admin
        )

        assert stale.status_code == 412, stale.text
        assert await available(routing, "slt-community") == before - 1
        current = (await routing.get("/v1/provisions/slt-community")).json()
        fresh = await routing.put(
            "/v1/provisions/slt-community", json={**current, "waiting_weeks": 7}, headers=admin
        )
        assert fresh.status_code == 200, fresh.text
        assert await available(routing, "slt-community") == before - 1
        stated = {**body, "capacity": {**body["capacity"], "updated": None}}  # stated afresh, as given
        assert (
            await routing.put("/v1/provisions/slt-community", json=stated, headers=admin)
        ).status_code == 200
        assert await available(routing, "slt-community") == before
