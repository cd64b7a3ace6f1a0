"""Hostile strings into every free-text and keyed field of intake, routing and analytics' settings
register, on real servers.

Each is either refused with a 422 naming the field, or stored as sent, returned byte-for-byte
and never read as a MongoDB operator (checked in the database itself). Any unhandled error
in a service fails the test: the ASGI transport raises it here instead of answering 500.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from functools import reduce
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import quote

import httpx
import pytest
import pytest_asyncio
from pymongo import AsyncMongoClient
from signpost.analytics.app import create_app as create_analytics
from signpost.intake.app import create_app as create_intake
from signpost.routing.app import create_app as create_routing
from signpost.shared.settings import Settings
from starlette.applications import Starlette
from starlette.responses import RedirectResponse
from starlette.routing import Route

from tests.conftest import Tokens, eventually, serving, settings_for
from tests.factories import referral
from tests.oruk_fixtures import oruk_service
from tests.servers import KafkaServer, MongoServer
from tests.threaded_server import serve_in_thread

pytestmark = pytest.mark.asyncio(loop_scope="module")

# Refused wherever text is expected.
REFUSED = {
    "very long": "x" * 20_000,  # over every text field's limit
    "NUL": "Amy\x00Jones",
    "terminal escape": "Amy\x1b[31mJones",
    "C1 control": "Amy\x85Jones",
    "right-to-left override": "Amy\u202eSENOJ",
    "lone surrogate": "Amy\ud800Jones",  # sent as the JSON escape \ud800
}
# Stored as sent: people's names and notes hold all of these.
INERT = {
    "right-to-left script": "مريم כהן",
    "zero-width": "Amy\u200bJo\u200dnes",
    "combining marks": "Zo\u0308e\u0301",
    "emoji": "Amy 👩‍👧‍👦",
    "operator-like": "$gt",
    "where": "$where: function() { sleep(1000) }",
    "dotted": "a.b.$ne",
}
# Documents where a string is expected: never passed to MongoDB as operators.
STRUCTURES: dict[str, Any] = {
    "operator": {"$gt": ""},
    "where": {"$where": "sleep(1000)"},
    "list": ["$ne"],
}

# Where a field is: the keys and list indexes leading to it from the body's root.
FieldPath = tuple[str | int, ...]
REFERRAL_TEXT = [
    ("referrer", "name"),
    ("referrer", "organisation"),
    ("child", "given_name"),
    ("child", "family_name"),
    ("child", "address", "line1"),
    ("child", "address", "line2"),
    ("child", "address", "town"),
    ("graduated_approach", "summary"),
    ("details",),
]
REFERRAL_KEYED = [("locality",), ("setting_id",), ("referrer", "email"), ("referrer", "setting_id")]

PROVISION_TEXT = [("name",), ("organisation",), ("cost",), ("localities", 0), ("contact", "email")]
PROVISION_KEYED: list[FieldPath] = [("id",), ("organisation_id",), ("contact", "phone"), ("contact", "url")]
PROVISION: dict[str, Any] = {
    "id": "hostile-input-check",
    "name": "Speech and language drop-in",
    "organisation": "Community health",
    "organisation_id": "nhs-community-slt",
    "sector": "health",
    "need_codes": ["SLCN"],
    "min_age": 0,
    "max_age": 18,
    "localities": ["Ashley"],
    "contact": {"email": "slt@example.org", "phone": "0117 000 0000", "url": "https://example.org"},
    "capacity": {"available": 1, "maximum": 4},
}


class Platform(NamedTuple):
    intake: httpx.AsyncClient
    routing: httpx.AsyncClient
    analytics: httpx.AsyncClient
    tokens: Tokens
    settings: Settings
    mongo: AsyncMongoClient[dict[str, Any]]

    def db(self, service: str) -> Any:
        return self.mongo[self.settings.database_name(service)]  # type: ignore[arg-type]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def platform(kafka: KafkaServer, mongodb: MongoServer, dev_key_file: Path) -> AsyncIterator[Platform]:
    settings = settings_for(
        kafka,
        mongodb,
        auth_dev_key_file=dev_key_file,
        rate_limit_writes_per_minute=100_000,
        outbound_loopback_only=True,
    )
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongodb_url)
    async with (
        serving(create_intake(settings)) as intake,
        serving(create_routing(settings)) as routing,
        serving(create_analytics(settings)) as analytics,
    ):
        yield Platform(intake, routing, analytics, Tokens(settings), settings, mongo)
    await mongo.close()


def with_value(body: dict[str, Any], path: FieldPath, value: Any) -> dict[str, Any]:
    copied: dict[str, Any] = json.loads(json.dumps(body))
    parent = at(copied, path[:-1])
    parent[path[-1]] = value
    return copied


def at(document: Any, path: FieldPath) -> Any:
    return reduce(lambda node, key: node[key], path, document)


def field_of(path: FieldPath, prefix: str = "body") -> str:
    return ".".join([prefix, *map(str, path)])


async def send(
    client: httpx.AsyncClient, method: str, url: str, body: Any, token: str, **headers: str
) -> httpx.Response:
    # json.dumps escapes a lone surrogate as \ud800, as a hostile client would send it.
    return await client.request(
        method,
        url,
        content=json.dumps(body),
        headers={"content-type": "application/json", "authorization": f"Bearer {token}", **headers},
    )


def assert_refused(response: httpx.Response, field: str) -> None:
    assert response.status_code == 422, response.text
    fields = [problem["field"] for problem in response.json()["detail"]]
    assert any(f == field or f.startswith(f"{field}.") for f in fields), (field, fields)


def full_referral() -> dict[str, Any]:
    body = referral()
    body["child"]["address"]["line2"] = "Flat 2"
    return body


# ---- intake: the referral body


@pytest.mark.parametrize("path", REFERRAL_TEXT + REFERRAL_KEYED, ids=field_of)
async def test_hostile_strings_in_a_referral_are_refused_naming_the_field(
    platform: Platform, path: tuple[str, ...]
) -> None:
    for value in [*REFUSED.values(), *STRUCTURES.values()]:
        body = with_value(full_referral(), path, value)
        response = await send(platform.intake, "POST", "/v1/referrals", body, platform.tokens.practitioner())
        assert_refused(response, field_of(path))


async def test_operator_keys_in_a_referral_are_refused_naming_them(platform: Platform) -> None:
    for key in ["$where", "$set", "child.given_name", "referrer.$ne"]:
        for where in [(), ("child",), ("referrer",)]:
            body = full_referral()
            at(body, where)[key] = "anything"
            response = await send(
                platform.intake, "POST", "/v1/referrals", body, platform.tokens.practitioner()
            )
            assert_refused(response, field_of((*where, key)))


@pytest.mark.parametrize("kind", INERT)
async def test_unusual_but_harmless_text_in_a_referral_is_stored_byte_for_byte(
    platform: Platform, kind: str
) -> None:
    value = INERT[kind]
    body = full_referral()
    for path in REFERRAL_TEXT:
        body = with_value(body, path, value)
    practitioner = platform.tokens.practitioner()
    response = await send(platform.intake, "POST", "/v1/referrals", body, practitioner)
    assert response.status_code == 201, response.text
    referral_id = response.json()["id"]

    stored = await platform.db("intake")["referrals"].find_one({"_id": referral_id})
    child = await platform.db("intake")["child_details"].find_one({"_id": referral_id})
    assert stored is not None and child is not None
    for path in REFERRAL_TEXT:
        if path[0] == "child":
            assert at(child, path[1:]) == value, path
        elif path == ("details",):
            assert stored["information"][0]["text"] == value
        else:
            assert at(stored, path) == value, path
    read = await platform.intake.get(
        f"/v1/referrals/{referral_id}/child",
        params={"purpose": "correction"},
        headers={"authorization": f"Bearer {practitioner}"},
    )
    assert read.status_code == 200
    assert read.content.decode() == read.text and read.json()["given_name"] == value


async def test_hostile_idempotency_keys_are_refused_naming_the_header(platform: Platform) -> None:
    practitioner = platform.tokens.practitioner()
    keys = ["$gt", '{"$gt": ""}', "a" * 129, "short", "key with spaces", "key\u202eevil", "key\x00nul-byte"]
    for key in keys:
        response = await platform.intake.post(
            "/v1/referrals",
            json=full_referral(),
            headers=[
                (b"authorization", f"Bearer {practitioner}".encode()),
                (b"idempotency-key", key.encode()),
            ],
        )
        assert_refused(response, "header.Idempotency-Key")


# ---- intake: notes added later


async def routed_referral(platform: Platform) -> str:
    practitioner = platform.tokens.practitioner()
    referral_id = (
        await send(platform.intake, "POST", "/v1/referrals", full_referral(), practitioner)
    ).json()["id"]

    async def routed() -> bool:
        view = await platform.intake.get(
            f"/v1/referrals/{referral_id}", headers={"authorization": f"Bearer {practitioner}"}
        )
        return bool(view.json()["status"] == "routed")

    await eventually(routed, what="referral routed")
    return str(referral_id)


async def test_information_and_decline_notes_refuse_hostile_text_and_keep_the_rest(
    platform: Platform,
) -> None:
    referral_id = await routed_referral(platform)
    practitioner = platform.tokens.practitioner()
    agency = platform.tokens.agency("la-inclusion-service")
    information = f"/v1/referrals/{referral_id}/information"
    decline = f"/v1/referrals/{referral_id}/offers/autism-outreach/decline"
    for value in [*REFUSED.values(), *STRUCTURES.values()]:
        assert_refused(
            await send(platform.intake, "POST", information, {"text": value}, practitioner), "body.text"
        )
        assert_refused(
            await send(platform.intake, "POST", decline, {"reason": "other", "note": value}, agency),
            "body.note",
        )
    assert_refused(
        await send(platform.intake, "POST", information, {"text": "ok", "$push": {"x": 1}}, practitioner),
        "body.$push",
    )

    note = "\n".join(INERT.values()) + "\ttabbed"  # notes may run over lines
    for value in INERT.values():
        added = await send(platform.intake, "POST", information, {"text": value}, practitioner)
        assert added.status_code == 200, added.text
    declined = await send(platform.intake, "POST", decline, {"reason": "other", "note": note}, agency)
    assert declined.status_code == 200, declined.text
    assert declined.json()["timeline"][-1]["note"] == note

    stored = await platform.db("intake")["referrals"].find_one({"_id": referral_id})
    assert stored is not None
    assert [entry["text"] for entry in stored["information"]][-len(INERT) :] == list(INERT.values())
    assert stored["timeline"][-1]["note"] == note


async def test_filters_on_referrals_treat_hostile_values_literally(platform: Platform) -> None:
    practitioner = {"authorization": f"Bearer {platform.tokens.practitioner()}"}
    for params in [
        {"locality": "$ne"},
        {"setting_id": '{"$gt": ""}'},
        {"locality": "Ashley", "setting_id": "$where"},
    ]:
        response = await platform.intake.get("/v1/referrals", params=params, headers=practitioner)
        assert response.status_code == 200, response.text
        assert response.json()["items"] == [], params
    for name, value in [
        ("cursor", "$gt"),
        ("cursor", '{"$gt": ""}'),
        ("cursor", "\x00"),
        ("status", "$ne"),
        ("need_code", "$gt"),
        ("locality", "x" * 65),
        ("setting_id", "a\x00"),
    ]:
        response = await platform.intake.get("/v1/referrals", params={name: value}, headers=practitioner)
        assert_refused(response, f"query.{name}")


# ---- routing: provisions and the Local Offer search


@pytest.mark.parametrize("path", PROVISION_TEXT + PROVISION_KEYED, ids=field_of)
async def test_hostile_strings_in_a_provision_are_refused_naming_the_field(
    platform: Platform, path: FieldPath
) -> None:
    admin = platform.tokens.admin()
    for value in [*REFUSED.values(), *STRUCTURES.values()]:
        body = with_value(PROVISION, path, value)
        assert_refused(await send(platform.routing, "POST", "/v1/provisions", body, admin), field_of(path))
        update = await send(
            platform.routing, "PUT", "/v1/provisions/slt-community", {**body, "id": "slt-community"}, admin
        )
        if path != ("id",):
            assert_refused(update, field_of(path))


async def test_operator_keys_and_bad_times_in_a_provision_are_refused(platform: Platform) -> None:
    admin = platform.tokens.admin()
    for key in ["$where", "$set", "contact.email"]:
        for where in [(), ("contact",), ("capacity",)]:
            body = json.loads(json.dumps(PROVISION))
            at(body, where)[key] = "anything"
            assert_refused(
                await send(platform.routing, "POST", "/v1/provisions", body, admin), field_of((*where, key))
            )
    # A time with no zone, or one that does not exist in UTC, is refused rather than guessed at.
    for updated in ["2026-01-01T09:00:00", "0001-01-01T00:16:00+15:16", "9999-12-31T23:59:59-05:00"]:
        body = with_value(PROVISION, ("capacity", "updated"), updated)
        assert_refused(
            await send(platform.routing, "POST", "/v1/provisions", body, admin), "body.capacity.updated"
        )


async def test_unusual_text_in_a_provision_is_stored_byte_for_byte_and_searched_literally(
    platform: Platform,
) -> None:
    admin = platform.tokens.admin()
    for number, (kind, value) in enumerate(INERT.items()):
        body = {**PROVISION, "id": f"inert-{number}"}
        for path in PROVISION_TEXT[:-1]:  # contact.email keeps its own shape
            body = with_value(body, path, value)
        created = await send(platform.routing, "POST", "/v1/provisions", body, admin)
        assert created.status_code == 201, (kind, created.text)
        stored = await platform.db("routing")["provisions"].find_one({"_id": body["id"]})
        assert stored is not None
        read = (await platform.routing.get(f"/v1/provisions/{body['id']}")).json()
        for path in PROVISION_TEXT[:-1]:
            assert at(stored, path) == value and at(read, path) == value, (kind, path)
        by_locality = (await platform.routing.get("/v1/provisions", params={"locality": value})).json()
        assert body["id"] in {p["id"] for p in by_locality["items"]}, kind
        by_name = (await platform.routing.get("/v1/provisions", params={"q": value})).json()
        assert body["id"] in {p["id"] for p in by_name["items"]}, kind


async def test_search_filters_treat_hostile_values_literally_or_refuse_them(platform: Platform) -> None:
    everything = (await platform.routing.get("/v1/provisions", params={"limit": 200})).json()["total"]
    for q in [".*", "$where", '{"$gt": ""}', "^", "a|b", "(?i)"]:
        found = await platform.routing.get("/v1/provisions", params={"q": q})
        assert found.status_code == 200 and found.json()["total"] < everything, q
    for path, params, field in [
        ("/v1/provisions", {"q": "x" * 101}, "query.q"),
        ("/v1/provisions", {"q": "a\x00b"}, "query.q"),
        ("/v1/provisions", {"locality": "x" * 65}, "query.locality"),
        ("/v1/provisions", {"locality": "Ash\x1bley"}, "query.locality"),
        ("/v1/provisions", {"need_code": "$gt"}, "query.need_code"),
        ("/oruk/services", {"text": "a\x00b"}, "query.text"),
    ]:
        assert_refused(await platform.routing.get(path, params=params), field)
    # Bracketed operator syntax is no parameter of ours: refused naming it, never read as a filter.
    bracketed = await platform.routing.get("/v1/provisions", params={"locality[$ne]": "x", "limit": 200})
    assert_refused(bracketed, "query.locality[$ne]")


# ---- routing: the Open Referral UK import


async def test_an_imported_feed_never_stores_operators_or_invalid_unicode(platform: Platform) -> None:
    good = oruk_service(1, name="Speech drop-in $where")
    with_keys = oruk_service(2, **{"$where": "sleep(1000)", "organization.$ne": "x"})
    with_keys["organization"]["$set"] = {"name": "taken over"}
    feed = [
        good,
        with_keys,
        oruk_service(3, name={"$gt": ""}),
        oruk_service(4, description="Amy\ud800Jones"),
        oruk_service(5, **{"Amy\udfffJones": 1}),
        oruk_service(6, name="Amy\x00Jones"),
    ]
    response = await send(
        platform.routing, "POST", "/v1/catalogue/import", {"feed": feed}, platform.tokens.admin()
    )
    assert response.status_code == 200, response.text
    report = response.json()
    created = sorted(item["oruk_id"] for item in report["created"])
    assert created == sorted([good["id"], with_keys["id"]]), report
    reasons = {item["oruk_id"]: item["reason"] for item in report["skipped"]}
    assert reasons[feed[2]["id"]] == "missing name"
    assert "the service.description holds a lone surrogate" in reasons[feed[3]["id"]]
    assert "a key in the service holds a lone surrogate" in reasons[feed[4]["id"]]
    assert "U+0000" in reasons[feed[5]["id"]]

    routing = platform.db("routing")
    stored = await routing["provisions"].find_one({"_id": good["id"]})
    assert stored is not None and stored["name"] == "Speech drop-in $where"
    for collection in ("provisions", "oruk_details"):
        document = await routing[collection].find_one({"_id": with_keys["id"]})
        assert document is not None
        assert not any(key.startswith("$") or "." in key for key in _all_keys(document)), document
    details = await routing["oruk_details"].find_one({"_id": with_keys["id"]})
    assert details is not None and details["organization"]["name"] == with_keys["organization"]["name"]


def _all_keys(document: Any) -> list[str]:
    if isinstance(document, dict):
        return [key for key, value in document.items() for key in [key, *_all_keys(value)]]
    if isinstance(document, list):
        return [key for item in document for key in _all_keys(item)]
    return []


async def test_an_import_reaches_only_http_urls_on_this_machine_when_told_to(platform: Platform) -> None:
    admin = platform.tokens.admin()
    assert platform.settings.outbound_loopback_only
    for url in ["file:///etc/passwd", "gopher://127.0.0.1/", "http://example.org/feed", "https://10.0.0.1/"]:
        response = await send(platform.routing, "POST", "/v1/catalogue/import", {"source_url": url}, admin)
        assert_refused(response, "body.source_url")

    # A feed on this machine that redirects elsewhere is refused before the redirect is followed
    # (0.0.0.0 is not loopback to the check, yet would still reach this machine if it were broken).
    redirecting = Starlette(
        routes=[Route("/services", lambda _: RedirectResponse("http://0.0.0.0:9/services"))]
    )
    with serve_in_thread(redirecting) as base_url:
        response = await send(
            platform.routing, "POST", "/v1/catalogue/import", {"source_url": base_url}, admin
        )
    assert response.status_code == 502, response.text
    assert "must be on this machine" in response.json()["detail"]


async def test_a_feed_s_line_breaks_become_spaces_and_its_control_characters_skip_the_service(
    platform: Platform,
) -> None:
    multi_line = oruk_service(
        7, name="Talking\n\tTogether  7", cost_options=[], fees_description="Free.\r\nDonations welcome"
    )
    escaped_email = oruk_service(8, email="hello\x1b@talking-together.example")
    response = await send(
        platform.routing,
        "POST",
        "/v1/catalogue/import",
        {"feed": [multi_line, escaped_email]},
        platform.tokens.admin(),
    )
    assert response.status_code == 200, response.text
    report = response.json()
    assert [item["oruk_id"] for item in report["created"]] == [multi_line["id"]]
    stored = await platform.db("routing")["provisions"].find_one({"_id": multi_line["id"]})
    assert stored is not None
    assert (stored["name"], stored["cost"]) == ("Talking Together 7", "Free. Donations welcome")
    [skipped] = report["skipped"]
    assert skipped["oruk_id"] == escaped_email["id"] and "U+001B" in skipped["reason"]


async def test_webhooks_reach_only_this_machine_when_told_to(platform: Platform) -> None:
    agency = platform.tokens.agency("la-inclusion-service")
    elsewhere = await send(
        platform.intake, "POST", "/v1/subscriptions", {"url": "https://partner.example/hook"}, agency
    )
    assert_refused(elsewhere, "body.url")
    assert "must be on this machine" in elsewhere.text
    here = await send(
        platform.intake, "POST", "/v1/subscriptions", {"url": "https://127.0.0.1:9/hook"}, agency
    )
    assert here.status_code == 201, here.text


async def test_provisions_an_older_release_stored_are_still_read_as_they_are(platform: Platform) -> None:
    """Text and times the rules now refuse may already be stored: reads and matching keep working."""
    admin = platform.tokens.admin()
    body = {**PROVISION, "id": "stored-before-the-rules"}
    assert (await send(platform.routing, "POST", "/v1/provisions", body, admin)).status_code == 201
    old_name = "Tabbed\tname \u202e from an older release"
    await platform.db("routing")["provisions"].update_one(
        {"_id": body["id"]},
        {"$set": {"name": old_name, "capacity.updated": "2026-01-05T09:00:00", "localities": ["Ashley\x85"]}},
    )
    read = await platform.routing.get(f"/v1/provisions/{body['id']}")
    assert read.status_code == 200, read.text
    assert read.json()["name"] == old_name
    assert read.json()["capacity"]["updated"].startswith("2026-01-05T09:00:00")
    listed = await platform.routing.get("/v1/provisions", params={"locality": "Ashley\x85"})
    assert listed.status_code == 422  # a search for it is new input, so refused
    listed = await platform.routing.get("/v1/provisions", params={"q": "Tabbed", "limit": 200})
    assert [p["name"] for p in listed.json()["items"]] == [old_name]


async def test_child_details_an_older_release_stored_are_still_read_as_they_are(platform: Platform) -> None:
    practitioner = platform.tokens.practitioner()
    response = await send(platform.intake, "POST", "/v1/referrals", full_referral(), practitioner)
    referral_id = response.json()["id"]
    # Referred at 24, read at 26; a name with a character the rules now refuse.
    old = {"date_of_birth": "2000-01-01", "family_name": "Quill\u202efeather"}
    await platform.db("intake")["child_details"].update_one({"_id": referral_id}, {"$set": old})
    read = await platform.intake.get(
        f"/v1/referrals/{referral_id}/child",
        params={"purpose": "correction"},
        headers={"authorization": f"Bearer {practitioner}"},
    )
    assert read.status_code == 200, read.text
    assert {key: read.json()[key] for key in old} == old


# ---- analytics: the settings register


SETTING: dict[str, Any] = {"name": "Ashley Primary", "locality": "Ashley", "phase": "primary"}


@pytest.mark.parametrize("path", [("name",), ("locality",), ("phase",)], ids=field_of)
async def test_hostile_strings_in_a_setting_are_refused_naming_the_field(
    platform: Platform, path: FieldPath
) -> None:
    admin = platform.tokens.admin()
    for value in [*REFUSED.values(), *STRUCTURES.values()]:
        body = with_value(SETTING, path, value)
        refused = await send(platform.analytics, "PUT", "/v1/settings-register/URN100001", body, admin)
        assert_refused(refused, field_of(path))


async def test_unusual_text_in_a_setting_is_stored_as_sent(platform: Platform) -> None:
    admin = platform.tokens.admin()
    sent = {
        f"URN2000{n}": {**SETTING, "name": value, "phase": value} for n, value in enumerate(INERT.values())
    }
    for setting_id, body in sent.items():
        accepted = await send(platform.analytics, "PUT", f"/v1/settings-register/{setting_id}", body, admin)
        assert accepted.status_code == 202, accepted.text

    async def registered() -> dict[str, Any] | None:
        answer = await platform.analytics.get(
            "/v1/settings-register", headers={"authorization": f"Bearer {admin}"}
        )
        found = {setting["setting_id"]: setting for setting in answer.json()}
        return found if sent.keys() <= found.keys() else None

    found = await eventually(registered, what="every setting folded into the register")
    for setting_id, body in sent.items():
        assert (found[setting_id]["name"], found[setting_id]["phase"]) == (body["name"], body["phase"])


# ---- path parameters, analytics' queries and the notes of every move on a referral

# Ids a caller may put in a path: each is refused naming the parameter, or looked up literally and
# not found; never a 5xx, never read as an operator.
HOSTILE_IDS = {
    "operator": "$gt",
    "operator document": '{"$gt": ""}',
    "where": "$where",
    "dotted operator": "a.$ne",
    "NUL": "a\x00b",
    "terminal escape": "a\x1b[31mb",
    "line break": "a\nb",
    "C1 control": "a\x85b",
    "very long": "x" * 5_000,
    "right-to-left override": "a\u202eb",
    "zero-width": "a\u200bb",
    "combining marks": "Zo\u0308e\u0301",
    "emoji": "👩‍👧‍👦",
}
# Bytes that are not UTF-8 at all: a lone surrogate's encoding, and a byte UTF-8 never uses.
RAW_IDS = {"lone surrogate": "%ED%A0%80", "invalid byte": "%FF"}


def path_ids() -> list[tuple[str, str]]:
    return [(kind, quote(value, safe="")) for kind, value in HOSTILE_IDS.items()] + list(RAW_IDS.items())


def refused_or_not_found(response: httpx.Response, field: str, kind: str) -> None:
    """A 422 naming `field`, or a 404 saying what was looked for and not found."""
    if response.status_code == 422:
        assert_refused(response, field)
    else:
        assert response.status_code == 404, (kind, response.status_code, response.text[:300])
        assert response.json()["detail"].startswith("no "), (kind, response.text[:300])


async def test_hostile_ids_in_intake_and_routing_paths_are_looked_up_literally(platform: Platform) -> None:
    admin, practitioner = platform.tokens.admin(), platform.tokens.practitioner()
    agency = platform.tokens.agency("la-inclusion-service")
    referral_id = await routed_referral(platform)
    before = await platform.db("intake")["referrals"].find_one({"_id": referral_id})
    provisions = await platform.db("routing")["provisions"].count_documents({})
    for kind, encoded in path_ids():
        for client, method, url, body, token, field in [
            (platform.intake, "GET", f"/v1/referrals/{encoded}", None, practitioner, ""),
            (
                platform.intake,
                "GET",
                f"/v1/referrals/{encoded}/child?purpose=correction",
                None,
                practitioner,
                "",
            ),
            (
                platform.intake,
                "POST",
                f"/v1/referrals/{encoded}/information",
                {"text": "x"},
                practitioner,
                "",
            ),
            (
                platform.intake,
                "POST",
                f"/v1/referrals/{encoded}/withdraw",
                {"reason": "duplicate"},
                practitioner,
                "",
            ),
            (
                platform.intake,
                "POST",
                f"/v1/referrals/{encoded}/offers/autism-outreach/accept",
                {},
                agency,
                "",
            ),
            # The real referral, with a hostile provision: nothing of it changes.
            (platform.intake, "POST", f"/v1/referrals/{referral_id}/offers/{encoded}/accept", {}, agency, ""),
            (platform.intake, "POST", f"/v1/referrals/{referral_id}/offers/{encoded}/start", {}, agency, ""),
            (platform.routing, "GET", f"/v1/provisions/{encoded}", None, admin, ""),
            (platform.routing, "POST", f"/v1/provisions/{encoded}/retire", None, admin, ""),
            (platform.routing, "PUT", f"/v1/provisions/{encoded}", PROVISION, admin, "body.id"),
            (platform.routing, "GET", f"/v1/decisions/{encoded}", None, admin, ""),
            (platform.routing, "GET", f"/oruk/services/{encoded}", None, admin, ""),
        ]:
            response = await send(client, method, url, body, token)
            refused_or_not_found(response, field, f"{kind} {method} {url[:60]}")
        # The id in the body as well as the path: the body's id is refused, so nothing is stored.
        value = HOSTILE_IDS.get(kind)
        if value is not None:
            update = await send(
                platform.routing, "PUT", f"/v1/provisions/{encoded}", {**PROVISION, "id": value}, admin
            )
            assert_refused(update, "body.id")
    assert await platform.db("intake")["referrals"].find_one({"_id": referral_id}) == before
    assert await platform.db("routing")["provisions"].count_documents({}) == provisions
    ids = list(HOSTILE_IDS.values())
    for service, collection in [("intake", "referrals"), ("routing", "provisions"), ("routing", "decisions")]:
        assert await platform.db(service)[collection].count_documents({"_id": {"$in": ids}}) == 0


async def test_hostile_setting_ids_are_refused_naming_the_path_parameter(platform: Platform) -> None:
    # A line break used to match no route at all (Starlette's `path` stops at one): a bare 404.
    admin = platform.tokens.admin()
    for kind, encoded in path_ids():
        for method, body in [("PUT", SETTING), ("DELETE", None)]:
            response = await send(platform.analytics, method, f"/v1/settings-register/{encoded}", body, admin)
            assert response.status_code == 422, (kind, method, response.text[:300])
            assert_refused(response, "path.setting_id")


async def test_operator_keys_in_a_setting_are_refused_naming_them(platform: Platform) -> None:
    admin = platform.tokens.admin()
    staged = await platform.db("analytics")["outbox"].count_documents({})
    for key in ["$where", "$set", "name.$ne", "$"]:
        body = {**SETTING, key: "anything"}
        refused = await send(platform.analytics, "PUT", "/v1/settings-register/URN300001", body, admin)
        assert_refused(refused, f"body.{key}")
    nested = await send(
        platform.analytics, "PUT", "/v1/settings-register/URN300001", {**SETTING, "name": {"$gt": ""}}, admin
    )
    assert_refused(nested, "body.name")
    # None of it became a change to the register.
    assert await platform.db("analytics")["outbox"].count_documents({}) == staged


ANALYTICS_QUERIES: list[tuple[str, dict[str, str]]] = [
    ("/v1/pulse/summary", {}),
    ("/v1/pulse/breakdown", {"measure": "submitted", "group_by": "locality"}),
    ("/v1/pulse/trend", {"measure": "submitted", "interval": "week"}),
    ("/v1/pulse/what-works", {"group_by": "provision"}),
    ("/v1/pulse/unmet-demand", {}),
    ("/v1/pulse/waiting", {}),
    ("/v1/pulse/declines", {}),
]


async def test_hostile_analytics_queries_are_refused_naming_the_parameter(platform: Platform) -> None:
    analyst = {"authorization": f"Bearer {platform.tokens.token('analyst', 'la-insight')}"}
    for path, required in ANALYTICS_QUERIES:
        for name in [*required, "locality", "setting", "need", "sector", "provision", "tenant", "from", "to"]:
            for value in [*HOSTILE_IDS.values(), '{"$gt": ""}', "2026-01-01\x00"]:
                params = {**required, name: value}
                response = await platform.analytics.get(path, params=params, headers=analyst)
                assert_refused(response, f"query.{name}")
    for name, value in [
        ("measure", "$gt"),
        ("measure", '{"$ne": null}'),
        ("from", "$gt"),
        ("from", "x" * 5_000),
        ("to", "2026-01-01\x00"),
        ("to", "2026-02-30"),
    ]:
        params = {"measure": "submitted", name: value}
        response = await platform.analytics.get("/v1/benchmarking", params=params, headers=analyst)
        assert_refused(response, f"query.{name}")
    for value in ["$gt", "a\x00", "x" * 100]:
        response = await platform.analytics.get("/v1/pulse", params={"tenant": value}, headers=analyst)
        assert_refused(response, "query.tenant")


async def test_notes_of_every_move_refuse_hostile_text_and_keep_the_rest(platform: Platform) -> None:
    referral_id = await routed_referral(platform)
    practitioner = platform.tokens.practitioner()
    agency = platform.tokens.agency("la-inclusion-service")
    offer = f"/v1/referrals/{referral_id}/offers/autism-outreach"
    completion = {"outcome": "needs_met", "needs_profile_after": {"communication_and_interaction": 1}}
    moves = [
        (f"{offer}/accept", {}, agency),
        (f"{offer}/start", {}, agency),
        (f"{offer}/complete", completion, agency),
    ]
    note = "\n".join(INERT.values())
    for url, body, token in moves:
        for value in [*REFUSED.values(), *STRUCTURES.values()]:
            assert_refused(
                await send(platform.intake, "POST", url, {**body, "note": value}, token), "body.note"
            )
        assert_refused(
            await send(platform.intake, "POST", url, {**body, "note": "ok", "$set": {"status": "x"}}, token),
            "body.$set",
        )
        moved = await send(platform.intake, "POST", url, {**body, "note": note}, token)
        assert moved.status_code == 200, (url, moved.text)
        assert moved.json()["timeline"][-1]["note"] == note
        stored = await platform.db("intake")["referrals"].find_one({"_id": referral_id})
        assert stored is not None and stored["timeline"][-1]["note"] == note

    withdrawn_id = await routed_referral(platform)
    withdraw = f"/v1/referrals/{withdrawn_id}/withdraw"
    for value in [*REFUSED.values(), *STRUCTURES.values()]:
        assert_refused(
            await send(platform.intake, "POST", withdraw, {"reason": "other", "note": value}, practitioner),
            "body.note",
        )
    for key in ["$set", "reason.$ne"]:
        assert_refused(
            await send(platform.intake, "POST", withdraw, {"reason": "duplicate", key: 1}, practitioner),
            f"body.{key}",
        )
    withdrawn = await send(platform.intake, "POST", withdraw, {"reason": "other", "note": note}, practitioner)
    assert withdrawn.status_code == 200, withdrawn.text
    stored = await platform.db("intake")["referrals"].find_one({"_id": withdrawn_id})
    assert stored is not None and stored["status"] == "withdrawn"
    assert stored["timeline"][-1]["note"] == f"other: {note}"  # the reason, then the words as sent
