"""Partner webhooks on real servers: signed CloudEvents, retries with backoff, the delivery log."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import uuid6
from signpost.intake.app import create_app as create_intake
from signpost.intake.subscriptions.models import DELIVERIES, SUBSCRIPTIONS
from signpost.intake.subscriptions.signing import verify
from signpost.routing.app import create_app as create_routing
from signpost.shared.service import Runtime

from tests.conftest import Tokens, eventually, serving, settings_for
from tests.factories import referral
from tests.plans import scanned
from tests.servers import KafkaServer, MongoServer

# pydantic takes it as a URL; httpx raises idna.InvalidCodepoint (a ValueError) on sending to it.
NOT_IDNA_URL = "https://xn--zz-zzz.example/"


@dataclass
class Receiver:
    url: str
    failures_left: int
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A partner's webhook endpoint on a free loopback port; it fails its first request."""
    state = Receiver(url="", failures_left=1)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["content-length"]))
            if state.failures_left > 0:
                state.failures_left -= 1
                self.send_response(500)
            else:
                state.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(204)
            self.end_headers()

        def log_message(self, *_: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_port}/signpost-events"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()


async def test_offers_reach_the_agency_webhook_signed_and_retried(
    kafka: KafkaServer, mongodb: MongoServer, dev_key_file: Path, receiver: Receiver
) -> None:
    settings = settings_for(kafka, mongodb, auth_dev_key_file=dev_key_file, webhook_retry_base_s=0.2)
    tokens = Tokens(settings)
    agency = {"Authorization": f"Bearer {tokens.agency('la-inclusion-service')}"}
    practitioner = {"Authorization": f"Bearer {tokens.practitioner()}"}
    async with AsyncExitStack() as stack:
        intake = await stack.enter_async_context(serving(create_intake(settings)))
        await stack.enter_async_context(serving(create_routing(settings)))

        created = await intake.post("/v1/subscriptions", json={"url": receiver.url}, headers=agency)
        assert created.status_code == 201, created.text
        subscription = created.json()
        referral_id = (await intake.post("/v1/referrals", json=referral(), headers=practitioner)).json()["id"]

        async def routed_delivered() -> list[tuple[dict[str, str], bytes]]:
            return [r for r in receiver.received if r[0]["ce-type"] == "uk.signpost.referral.routed.v1"]

        ((headers, body),) = await eventually(routed_delivered, what="routed event delivered")
        assert headers["ce-subject"] == referral_id and headers["ce-specversion"] == "1.0"
        assert headers["content-type"] == "application/json"
        assert verify(secret=subscription["secret"], body=body, header=headers["signpost-signature"])
        assert not verify(
            secret="another-secret-entirely-123", body=body, header=headers["signpost-signature"]
        )
        assert json.loads(body)["offers"][0]["provision_id"] == "autism-outreach"

        accepted = await intake.post(
            f"/v1/referrals/{referral_id}/offers/autism-outreach/accept", headers=agency
        )
        assert accepted.status_code == 200

        async def accepted_delivered() -> bool:
            return any(r[0]["ce-type"].endswith("offer_accepted.v1") for r in receiver.received)

        await eventually(accepted_delivered, what="acceptance delivered")

        page = await intake.get(f"/v1/subscriptions/{subscription['id']}/deliveries", headers=agency)
        log = page.json()["items"]
        routed = next(d for d in log if d["event_type"] == "uk.signpost.referral.routed.v1")
        assert routed["status"] == "delivered"
        assert [a["status_code"] for a in routed["attempts"]] == [500, 204]
        assert routed["attempts"][0]["error"] == "HTTP 500"

        other_agency = {"Authorization": f"Bearer {tokens.agency('nhs-community-slt')}"}
        hidden = await intake.get(f"/v1/subscriptions/{subscription['id']}/deliveries", headers=other_agency)
        assert hidden.status_code == 404


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"url": "http://partner.example/hook"}, "https"),
        (
            {"url": "https://partner.example/hook", "event_types": ["uk.signpost.nonsense.v1"]},
            "event types no webhook delivers",
        ),
        (  # a known event, but not one of a referral's: intake never delivers it
            {"url": "https://partner.example/hook", "event_types": ["uk.signpost.provision.changed.v1"]},
            """"field": "body.event_types", "message": "event types no webhook delivers ['uk.signpost.provision.changed.v1']""",
        ),
        ({"url": "https://partner.example/hook", "secret": "short"}, "at least 24"),
        (
            {"url": NOT_IDNA_URL},
            """"field": "body.url", "message": "url host 'xn--zz-zzz.example' is not a valid domain name""",
        ),
    ],
)
async def test_unsafe_or_unknown_subscriptions_are_refused(
    kafka: KafkaServer, mongodb: MongoServer, dev_key_file: Path, body: dict[str, Any], words: str
) -> None:
    settings = settings_for(kafka, mongodb, auth_dev_key_file=dev_key_file)
    agency = {"Authorization": f"Bearer {Tokens(settings).agency('la-inclusion-service')}"}
    from httpx import ASGITransport, AsyncClient

    app = create_intake(settings)  # validation needs no running consumer
    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://signpost.test") as client:
        response = await client.post("/v1/subscriptions", json=body, headers=agency)
    assert response.status_code == 422
    assert words in json.dumps(response.json())


async def test_a_url_that_cannot_be_sent_to_fails_its_deliveries_and_stops_no_others(
    kafka: KafkaServer, mongodb: MongoServer, dev_key_file: Path, receiver: Receiver
) -> None:
    """Such a subscription, from before its URL was refused: each attempt is recorded as failed
    like any other, and another agency's delivery goes once."""
    settings = settings_for(
        kafka, mongodb, auth_dev_key_file=dev_key_file, webhook_retry_base_s=0.2, webhook_max_attempts=2
    )
    tokens = Tokens(settings)
    education = {"Authorization": f"Bearer {tokens.agency('la-inclusion-service')}"}
    health = {"Authorization": f"Bearer {tokens.agency('mhst-schools')}"}
    receiver.failures_left = 0
    async with AsyncExitStack() as stack:
        intake = await stack.enter_async_context(serving(create_intake(settings)))
        await stack.enter_async_context(serving(create_routing(settings)))
        runtime = Runtime.build(settings, "intake")
        stack.push_async_callback(runtime.client.close)
        good = (await intake.post("/v1/subscriptions", json={"url": receiver.url}, headers=education)).json()
        await runtime.db[SUBSCRIPTIONS].insert_one(
            {"_id": "not-idna", "tenant": settings.tenant, "organisation": "mhst-schools", "url": NOT_IDNA_URL,
             "event_types": ["*"], "secret": "s" * 32, "active": True, "created_at": datetime.now(UTC)}
        )  # fmt: skip
        practitioner = {"Authorization": f"Bearer {tokens.practitioner()}"}
        package = referral(need_codes=["SEMH", "SPLD"])  # offered to both agencies
        assert (await intake.post("/v1/referrals", json=package, headers=practitioner)).status_code == 201

        async def settled(subscription_id: str, headers: dict[str, str]) -> list[dict[str, Any]] | None:
            log = (
                await intake.get(f"/v1/subscriptions/{subscription_id}/deliveries", headers=headers)
            ).json()["items"]
            return log if log and all(d["status"] != "pending" for d in log) else None

        failed = await eventually(lambda: settled("not-idna", health), what="the bad URL's deliveries settle")
        delivered = await eventually(
            lambda: settled(good["id"], education), what="the good deliveries settle"
        )

    for delivery in failed:
        assert delivery["status"] == "failed"
        assert [a["status_code"] for a in delivery["attempts"]] == [None, None]
        assert all(a["error"].startswith("InvalidCodepoint: ") for a in delivery["attempts"])
    assert [(d["status"], [a["status_code"] for a in d["attempts"]]) for d in delivered] == [
        ("delivered", [204])
    ] * len(delivered)
    assert len(receiver.received) == len(delivered)


async def test_a_stopped_subscription_is_queued_nothing_for_later_referrals(
    kafka: KafkaServer, mongodb: MongoServer, dev_key_file: Path, receiver: Receiver
) -> None:
    """Of an agency's two subscriptions, the one it stopped gets no delivery of a later referral's
    events, while the one it kept is sent them."""
    settings = settings_for(kafka, mongodb, auth_dev_key_file=dev_key_file)
    tokens = Tokens(settings)
    agency = {"Authorization": f"Bearer {tokens.agency('la-inclusion-service')}"}
    receiver.failures_left = 0
    async with AsyncExitStack() as stack:
        intake = await stack.enter_async_context(serving(create_intake(settings)))
        await stack.enter_async_context(serving(create_routing(settings)))
        kept, stopped = [
            (await intake.post("/v1/subscriptions", json={"url": receiver.url}, headers=agency)).json()["id"]
            for _ in range(2)
        ]
        assert (await intake.delete(f"/v1/subscriptions/{stopped}", headers=agency)).status_code == 204
        practitioner = {"Authorization": f"Bearer {tokens.practitioner()}"}
        assert (await intake.post("/v1/referrals", json=referral(), headers=practitioner)).status_code == 201

        async def deliveries(subscription_id: str) -> list[dict[str, Any]]:
            page = await intake.get(f"/v1/subscriptions/{subscription_id}/deliveries", headers=agency)
            assert page.status_code == 200, page.text
            return list(page.json()["items"])

        async def routed_delivered_to_kept() -> bool:
            log = await deliveries(kept)
            return any(
                d["event_type"] == "uk.signpost.referral.routed.v1" and d["status"] == "delivered"
                for d in log
            )

        # The routed event's deliveries were queued in one write for both subscriptions, if for both.
        await eventually(routed_delivered_to_kept, what="the routed event delivered")
        assert await deliveries(stopped) == []
        listed = (await intake.get("/v1/subscriptions", headers=agency)).json()
        assert {s["id"]: s["active"] for s in listed} == {kept: True, stopped: False}


async def test_the_delivery_log_pages_by_cursor_and_filters_by_status(
    kafka: KafkaServer, mongodb: MongoServer, dev_key_file: Path
) -> None:
    """More deliveries than a page: following next_cursor gives each once, newest first, from an
    index; a status filter pages the same way; a cursor no page gave out is refused."""
    settings = settings_for(kafka, mongodb, auth_dev_key_file=dev_key_file)
    agency = {"Authorization": f"Bearer {Tokens(settings).agency('la-inclusion-service')}"}
    async with AsyncExitStack() as stack:
        intake = await stack.enter_async_context(serving(create_intake(settings)))
        runtime = Runtime.build(settings, "intake")
        stack.push_async_callback(runtime.client.close)
        subscription = (
            await intake.post(
                "/v1/subscriptions", json={"url": "https://partner.example/hook"}, headers=agency
            )
        ).json()
        statuses = ["failed", "delivered", "pending"] * 4 + ["failed"]
        log = [
            {"_id": str(uuid6.uuid7()), "subscription_id": subscription["id"], "event_id": str(i),
             "event_type": "uk.signpost.referral.routed.v1", "referral_id": "r", "status": status,
             "attempts": [], "next_attempt_at": None}
            for i, status in enumerate(statuses)
        ]  # fmt: skip
        other = {**log[0], "_id": str(uuid6.uuid7()), "subscription_id": "another"}
        await runtime.db[DELIVERIES].insert_many([*log, other])
        newest_first = [d["_id"] for d in reversed(log)]

        async def follow(**params: Any) -> list[str]:
            seen: list[str] = []
            cursor = None
            while True:
                response = await intake.get(
                    f"/v1/subscriptions/{subscription['id']}/deliveries",
                    params={**params, "limit": 4, **({"cursor": cursor} if cursor else {})},
                    headers=agency,
                )
                assert response.status_code == 200, response.text
                page = response.json()
                assert len(page["items"]) <= 4
                seen += [d["id"] for d in page["items"]]
                if (cursor := page["next_cursor"]) is None:
                    return seen

        assert await follow() == newest_first
        failed = await follow(status="failed")
        assert failed == [d["_id"] for d in reversed(log) if d["status"] == "failed"] and len(failed) == 5

        for bad in ["not-a-cursor", '{"$gt": ""}', newest_first[0].upper()]:
            refused = await intake.get(
                f"/v1/subscriptions/{subscription['id']}/deliveries", params={"cursor": bad}, headers=agency
            )
            assert refused.status_code == 422, refused.text
            assert [p["field"] for p in refused.json()["detail"]] == ["query.cursor"]

        # Each page is read from an index that holds the whole filter: no delivery is read to be dropped.
        for status, index in [
            (None, {"subscription_id": 1, "_id": 1}),
            ("failed", {"subscription_id": 1, "status": 1, "_id": 1}),
        ]:
            query = {"subscription_id": subscription["id"], "_id": {"$lt": newest_first[2]}}
            found = runtime.db[DELIVERIES].find({**query, **({"status": status} if status else {})})
            scans, stats = await scanned(found.sort("_id", -1).limit(3))
            assert scans == [index]
            assert stats["totalDocsExamined"] == stats["totalKeysExamined"]
