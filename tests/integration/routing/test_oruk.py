"""Open Referral UK on real servers: import a paged feed from a real HTTP server, read it back as ORUK."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import jsonschema
import pytest
from aiokafka import AIOKafkaConsumer
from signpost.routing.app import create_app as create_routing
from signpost.routing.oruk.models import is_uuid
from signpost.shared.outbox import OUTBOX, pending_count
from signpost.shared.settings import Settings
from signpost.shared.topics import Topics

from tests.conftest import Tokens, eventually, serving
from tests.oruk_fixtures import ORG_ID, ORUK_SERVICE_SCHEMA, oruk_feed_app, oruk_service, term
from tests.threaded_server import serve_in_thread

VALIDATOR = jsonschema.Draft202012Validator(ORUK_SERVICE_SCHEMA, format_checker=jsonschema.FormatChecker())


def feed() -> list[dict[str, Any]]:
    return [
        oruk_service(1),
        oruk_service(
            2,
            name="Autism family support",
            attributes=[term("Autism"), term("Health")],
            minimum_age=4,
            maximum_age=16,
        ),
        oruk_service(
            3,
            name="Reading recovery",
            attributes=[term("Dyslexia"), term("Education")],
            minimum_age=6,
            maximum_age=11,
        ),
        oruk_service(4, name="Youth club", attributes=[term("Youth club")]),
        oruk_service(5, name="Muddled ages", minimum_age=30, maximum_age=10),
    ]


async def all_published(app: Any) -> None:
    """Wait for the outbox relay to publish everything staged (leaving mid-publish can stall shutdown)."""
    db = app.state.runtime.db
    await eventually(lambda: _none_pending(db), what="every staged event published")


async def _none_pending(db: Any) -> bool:
    return await pending_count(db) == 0


def ids(report_items: list[dict[str, Any]]) -> list[str]:
    return sorted(item["oruk_id"] for item in report_items)


async def provision_events(settings: Settings, keys: set[str]) -> dict[str, list[str]]:
    """Every provision.changed.v1 change on the compacted topic for `keys`, once each key has one."""
    consumer = AIOKafkaConsumer(
        Topics.from_settings(settings).provisions,
        bootstrap_servers=settings.kafka_bootstrap,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    changes: dict[str, list[str]] = {}
    try:
        while not keys <= changes.keys():
            record = await asyncio.wait_for(consumer.getone(), timeout=30)
            headers = {k: v.decode() for k, v in record.headers}
            assert headers["ce_type"] == "uk.signpost.provision.changed.v1"
            key = (record.key or b"").decode().removeprefix(f"{settings.tenant}|")  # keyed by area and id
            if key in keys:
                changes.setdefault(key, []).append(json.loads(record.value)["change"])
    finally:
        await consumer.stop()
    return changes


async def test_a_paged_feed_is_imported_reported_and_served_back_as_oruk(settings: Settings) -> None:
    services = feed()
    tokens = Tokens(settings)
    admin = {"Authorization": f"Bearer {tokens.admin()}"}
    with serve_in_thread(oruk_feed_app(services, page_cap=2)) as base_url:
        app = create_routing(settings)
        async with serving(app) as routing:
            body = {"source_url": base_url}
            assert (await routing.post("/v1/catalogue/import", json=body)).status_code == 401
            practitioner = {"Authorization": f"Bearer {tokens.practitioner()}"}
            assert (
                await routing.post("/v1/catalogue/import", json=body, headers=practitioner)
            ).status_code == 403

            answer = await routing.post("/v1/catalogue/import", json=body, headers=admin)
            assert answer.status_code == 200, answer.text
            report = answer.json()
            assert report["source"] == base_url
            assert report["totals"] == {"seen": 5, "created": 3, "updated": 0, "unchanged": 0, "skipped": 2}
            assert ids(report["created"]) == sorted(s["id"] for s in services[:3])
            skipped = {item["name"]: item for item in report["skipped"]}
            assert skipped["Youth club"]["oruk_id"] == services[3]["id"]
            assert skipped["Youth club"]["reason"] == (
                "no taxonomy term maps to a need code or broad area (terms: 'Youth club')"
            )
            assert skipped["Muddled ages"]["reason"] == "eligibility minimum_age 30 > maximum_age 10"

            autism = (await routing.get(f"/v1/provisions/{services[1]['id']}")).json()
            assert autism["need_codes"] == ["ASD"] and autism["sector"] == "health"
            assert (autism["min_age"], autism["max_age"], autism["localities"]) == (
                4,
                16,
                ["Ashley", "Bedminster"],
            )
            assert autism["capacity"]["available"] == 3 and autism["waiting_weeks"] == 6

            created = {s["id"] for s in services[:3]}
            events = await provision_events(settings, created)
            assert events == {provision_id: ["created"] for provision_id in created}

            outbox = routing_db(settings)
            staged = await outbox.count_documents({})
            again = (await routing.post("/v1/catalogue/import", json=body, headers=admin)).json()
            assert again["totals"] == {"seen": 5, "created": 0, "updated": 0, "unchanged": 3, "skipped": 2}
            assert await outbox.count_documents({}) == staged  # unchanged services publish nothing

            services[0]["capacities"][0].update(available=0, updated="2026-11-20T08:00:00Z")
            services[2]["status"] = "defunct"
            changed = (await routing.post("/v1/catalogue/import", json=body, headers=admin)).json()
            assert ids(changed["updated"]) == sorted([services[0]["id"], services[2]["id"]])
            assert await outbox.count_documents({}) == staged + 2
            assert (await routing.get(f"/v1/provisions/{services[0]['id']}")).json()["capacity"][
                "available"
            ] == 0

            await read_the_feed_back(routing, services)
            await all_published(app)


def routing_db(settings: Settings) -> Any:
    from pymongo import AsyncMongoClient

    client: AsyncMongoClient[Any] = AsyncMongoClient(settings.mongodb_url)
    return client[settings.database_name("routing")][OUTBOX]


async def read_the_feed_back(routing: Any, services: list[dict[str, Any]]) -> None:
    about = (await routing.get("/oruk/")).json()
    assert about["version"] == "3.0" and about["openapi_url"].endswith("/openapi.json")

    listed: list[dict[str, Any]] = []
    page = 1
    while True:
        answer = (await routing.get("/oruk/services", params={"page": page, "per_page": 4})).json()
        assert answer["page_number"] == page and answer["size"] == len(answer["contents"]) <= 4
        listed.extend(answer["contents"])
        if answer["last_page"]:
            break
        page += 1
    assert answer["total_items"] == len(listed) == 9 and answer["total_pages"] == 3  # 6 starter + 3 imported
    for item in listed:
        VALIDATOR.validate(item)
        full = (await routing.get(f"/oruk/services/{item['id']}")).json()
        VALIDATOR.validate(full)
        assert full["id"] == item["id"] and is_uuid(full["id"])

    speech = (await routing.get(f"/oruk/services/{services[0]['id']}")).json()
    assert speech["organization"]["id"] == ORG_ID and speech["capacities"][0]["available"] == 0
    assert {"Speech and language therapy", "Speech, language and communication needs"} <= {
        a["taxonomy_term"]["name"] for a in speech["attributes"]
    }
    assert [area["name"] for area in speech["service_areas"]] == ["Ashley", "Bedminster"]
    assert speech["contacts"][0]["phones"][0]["number"] == "01632 960123"
    assert (await routing.get(f"/oruk/services/{services[2]['id']}")).json()["status"] == "inactive"

    starter = next(item for item in listed if item["name"] == "Community speech and language therapy")
    assert (await routing.get(f"/oruk/services/{starter['id']}")).json()["name"] == starter["name"]
    assert (await routing.get("/oruk/services/not-a-service")).status_code == 404

    async def names(**params: Any) -> list[str]:
        answer = await routing.get("/oruk/services", params=params)
        assert answer.status_code == 200, answer.text
        return sorted(item["name"] for item in answer.json()["contents"])

    autism_term = services[1]["attributes"][0]["taxonomy_term"]["id"]
    assert await names(taxonomy_term_id=autism_term) == ["Autism family support"]
    slcn_term = next(a for a in speech["attributes"] if a["taxonomy_term"].get("term") == "SLCN")[
        "taxonomy_term_id"
    ]
    assert await names(taxonomy_term_id=slcn_term) == [
        "Autism and social communication outreach",
        "Community speech and language therapy",
        "Talking Together speech group 1",
    ]
    assert await names(organization_id=ORG_ID) == sorted(s["name"] for s in services[:3])
    inclusion = next(i for i in listed if i["name"] == "Specialist teaching and learning support")[
        "organization_id"
    ]
    assert await names(organization_id=inclusion) == [
        "Autism and social communication outreach",
        "Specialist teaching and learning support",
    ]
    assert await names(text="READING") == ["Reading recovery"]
    assert await names(minimum_age=5, maximum_age=18) == [
        "Early mental health support in schools",
        "Reading recovery",
    ]


async def test_bad_feeds_and_bodies_get_clear_errors_and_import_nothing(settings: Settings) -> None:
    admin = {"Authorization": f"Bearer {Tokens(settings).admin()}"}
    services = feed()[:3]
    with (
        serve_in_thread(oruk_feed_app(services, page_cap=1, failing_page=2)) as broken,
        serve_in_thread(oruk_feed_app(services)) as working,
    ):
        app = create_routing(settings)
        async with serving(app) as routing:

            async def attempt(body: Any) -> tuple[int, Any]:
                answer = await routing.post("/v1/catalogue/import", json=body, headers=admin)
                return answer.status_code, answer.json()

            code, answer = await attempt({"source_url": broken})
            assert code == 502
            assert (
                answer["detail"]
                == f"nothing imported: {broken}/services?page=2&per_page=100 answered HTTP 500"
            )
            assert (await routing.get(f"/v1/provisions/{services[0]['id']}")).status_code == 404

            code, answer = await attempt({"source_url": f"{working}/html"})
            assert code == 502 and "did not answer with JSON (text/html" in answer["detail"]

            from signpost.platform.processes import free_port

            nowhere = f"http://127.0.0.1:{free_port()}"
            code, answer = await attempt({"source_url": nowhere})
            assert code == 502 and answer["detail"].startswith(
                f"nothing imported: could not fetch {nowhere}/services"
            )

            code, answer = await attempt({"source_url": "ftp://example.invalid/feed"})
            assert code == 422 and answer["detail"][0]["field"] == "body.source_url"
            code, answer = await attempt({})
            assert code == 422 and "send either source_url or feed" in answer["detail"][0]["message"]
            code, answer = await attempt({"feed": {"hello": "world"}})
            assert code == 422 and answer["detail"] == [
                {
                    "field": "body.feed",
                    "message": "expected an ORUK page of services (with `contents`), one service (with `id`), "
                    "or a list of services",
                }
            ]

            # A document above the ordinary 64 KiB body limit: fine for the import route alone.
            big = [oruk_service(n, description="x" * 2000) for n in range(10, 50)]
            assert len(json.dumps(big)) > settings.max_request_bytes
            code, answer = await attempt({"feed": big})
            assert code == 200 and answer["totals"]["created"] == 40
            elsewhere = await routing.post(
                "/v1/provisions", content=json.dumps({"padding": "x" * 70_000}), headers=admin
            )
            assert elsewhere.status_code == 413

            code, answer = await attempt(
                {"feed": {"contents": [services[0]], "total_pages": 3, "page_number": 1}}
            )
            assert code == 200 and answer["totals"]["created"] == 1
            assert answer["warnings"] == [
                "the document is page 1 of 3: import from the feed's base URL to read every page"
            ]
            await all_published(app)


async def test_max_import_bytes_limits_each_feed_response_and_the_import_body(settings: Settings) -> None:
    """SIGNPOST_MAX_IMPORT_BYTES at 4 KiB, below the 64 KiB every other route takes: a page of the
    feed over it imports nothing, a service's full record over it is skipped, a body over it is 413."""
    limit = 4096
    limited = settings.model_copy(update={"max_import_bytes": limit})
    over_the_limit = f"sent more than the {limit}-byte limit (SIGNPOST_MAX_IMPORT_BYTES)"
    admin = {"Authorization": f"Bearer {Tokens(settings).admin()}"}
    services = [oruk_service(1, description="A long description. " * 250)]  # its list entry: 5 KB
    with serve_in_thread(oruk_feed_app(services)) as base_url:
        app = create_routing(limited)
        async with serving(app) as routing:

            async def attempt(body: Any) -> tuple[int, Any]:
                answer = await routing.post("/v1/catalogue/import", json=body, headers=admin)
                return answer.status_code, answer.json()

            code, answer = await attempt({"source_url": base_url})
            assert code == 502, answer
            assert (
                answer["detail"]
                == f"nothing imported: {base_url}/services?page=1&per_page=100 {over_the_limit}"
            )
            assert (await routing.get(f"/v1/provisions/{services[0]['id']}")).status_code == 404

            # A page within the limit, listing a service whose full record (30 terms: 10 KB) is not.
            many_terms = oruk_service(2, attributes=[term(f"Speech therapy {n}") for n in range(30)])
            services[:] = [oruk_service(1), many_terms]
            code, answer = await attempt({"source_url": base_url})
            assert code == 200 and ids(answer["created"]) == [services[0]["id"]]
            (skipped,) = answer["skipped"]
            assert skipped["oruk_id"] == many_terms["id"] and skipped["reason"].endswith(over_the_limit)

            within = {"feed": [oruk_service(3)]}
            assert len(json.dumps(within)) < limit
            code, answer = await attempt(within)
            assert code == 200 and answer["totals"]["created"] == 1
            over = {"feed": [oruk_service(n) for n in range(4, 7)]}
            assert limit < len(json.dumps(over)) < settings.max_request_bytes
            code, _ = await attempt(over)
            assert code == 413
            await all_published(app)


def answering_after(app: Any, *, delay_s: float) -> Any:
    """The publisher `app`, answering each request only after `delay_s`."""

    async def delayed(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            await asyncio.sleep(delay_s)
        await app(scope, receive, send)

    return delayed


def trickling(app: Any, *, every_s: float, chunks: int) -> Any:
    """The publisher `app`, sending each answer a byte at a time with a pause before each: no
    single read waits long, the whole answer takes `chunks * every_s`."""

    async def slowly(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        parts: list[bytes] = []

        async def keep(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message["headers"] if k.lower() != b"content-length"]
                await send({**message, "headers": headers})
            else:
                parts.append(message.get("body", b""))

        await app(scope, receive, keep)
        body = b" " * chunks + b"".join(parts)  # JSON allows the leading whitespace
        for byte in range(len(body)):
            if byte < chunks:
                await asyncio.sleep(every_s)
            await send({"type": "http.response.body", "body": body[byte : byte + 1], "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    return slowly


@pytest.mark.parametrize(
    "publisher",
    [
        pytest.param(lambda app: answering_after(app, delay_s=1.0), id="answering-after-1s"),
        pytest.param(lambda app: trickling(app, every_s=0.05, chunks=30), id="trickling-for-1.5s"),
    ],
)
async def test_a_feed_slower_than_the_oruk_fetch_timeout_imports_nothing(
    settings: Settings, publisher: Callable[[Any], Any]
) -> None:
    """SIGNPOST_ORUK_FETCH_TIMEOUT_S at 0.3 s, and a publisher whose answer takes over 1 s: within
    any limit but the setting's (its default 20 s, httpx's own 5 s), so only the setting stops it.
    It bounds the whole answer, not each read: a trickle of bytes is stopped too."""
    limited = settings.model_copy(update={"oruk_fetch_timeout_s": 0.3})
    admin = {"Authorization": f"Bearer {Tokens(settings).admin()}"}
    services = feed()[:1]
    with serve_in_thread(publisher(oruk_feed_app(services))) as base_url:
        async with serving(create_routing(limited)) as routing:
            answer = await routing.post("/v1/catalogue/import", json={"source_url": base_url}, headers=admin)
            assert answer.status_code == 502, answer.text
            assert answer.json()["detail"] == (
                f"nothing imported: could not fetch {base_url}/services: "
                "no whole answer within 0.3 s (SIGNPOST_ORUK_FETCH_TIMEOUT_S)"
            )
            assert (await routing.get(f"/v1/provisions/{services[0]['id']}")).status_code == 404


def nested_service(levels: int) -> str:
    """A service's JSON with `levels` arrays nested in a field no mapping reads (as text: no recursion)."""
    return json.dumps(oruk_service(1, extension="HERE")).replace('"HERE"', "[" * levels + "]" * levels)


def unreadable_feed_app() -> Any:
    """A publisher whose answers no ORUK reader should crash on: JSON nested too deep, a bad redirect."""
    from fastapi import FastAPI
    from fastapi.responses import RedirectResponse, Response

    app = FastAPI()

    @app.get("/unclosed/services")
    def unclosed() -> Response:
        return Response("[" * 5000, media_type="application/json")

    @app.get("/nested/services")
    def nested() -> Response:
        return Response(f'{{"contents": [{nested_service(900)}]}}', media_type="application/json")

    @app.get("/redirected/services")
    def redirected() -> Response:
        return RedirectResponse("http://xn--zz-zzz.example/services")  # not valid IDNA

    @app.get("/long-id/services")
    def long_id() -> Any:
        return {"contents": [{"id": "a" * 70_000, "name": "Long id"}]}  # its record's URL is too long

    return app


async def test_feeds_nested_too_deep_or_at_bad_urls_get_clear_errors(settings: Settings) -> None:
    admin = {"Authorization": f"Bearer {Tokens(settings).admin()}"}
    too_deep = "nests objects and arrays more than 64 deep: it is not an ORUK feed"
    with serve_in_thread(unreadable_feed_app()) as base_url:
        async with serving(create_routing(settings)) as routing:

            async def attempt(body: str) -> tuple[int, Any]:
                answer = await routing.post(
                    "/v1/catalogue/import",
                    content=body,
                    headers={**admin, "content-type": "application/json"},
                )
                return answer.status_code, answer.json()

            for feed in ("unclosed", "nested"):
                code, answer = await attempt(json.dumps({"source_url": f"{base_url}/{feed}"}))
                assert (code, answer["detail"]) == (
                    502,
                    f"nothing imported: {base_url}/{feed}/services?page=1&per_page=100 "
                    f"answered JSON that {too_deep}",
                )
            code, answer = await attempt(json.dumps({"source_url": f"{base_url}/redirected"}))
            assert code == 502 and answer["detail"].startswith(
                f"nothing imported: could not fetch {base_url}/redirected/services: bad URL: "
            )

            code, answer = await attempt(json.dumps({"source_url": f"{base_url}/long-id"}))
            assert code == 200 and answer["skipped"][0]["reason"].endswith(": bad URL: URL too long")

            code, answer = await attempt(f'{{"feed": [{nested_service(500)}]}}')
            assert (code, answer["detail"]) == (
                422,
                [{"field": "body.feed", "message": f"the document {too_deep}"}],
            )
            if not settings.outbound_loopback_only:  # which refuses the URL before it is parsed
                code, answer = await attempt(json.dumps({"source_url": "https://xn--zz-zzz.example/"}))
                assert code == 422 and answer["detail"][0]["field"] == "body.source_url"
                assert answer["detail"][0]["message"].startswith("bad URL: ")
