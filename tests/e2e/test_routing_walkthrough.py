"""Routing as a new user meets it, on `signpost run`: import an Open Referral UK feed with the
CLI (file and URL), read it back as an ORUK client, route referrals whose right answer is
known, decline and see re-routing, hold and free a place, and push poison that is
dead-lettered while the partition keeps moving."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer
from signpost.shared.events import (
    Envelope,
    EventData,
    ReferralSubmittedV1,
    new_event,
    to_kafka_headers,
    to_kafka_value,
)
from signpost.shared.vocabulary import LevelOfNeed, NeedCode, broad_areas

from tests.e2e.running import RunningPlatform, request, running_platform, wait_for
from tests.factories import referral
from tests.oruk_fixtures import oruk_feed_app
from tests.threaded_server import serve_in_thread

ALL_SECTORS = ["education", "health", "social_care", "voluntary"]


def _id(label: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"urn:signpost-walkthrough:{label}"))


def _service(label: str, name: str, organisation: str, terms: list[str], **fields: Any) -> dict[str, Any]:
    return {
        "id": _id(label),
        "name": name,
        "status": "active",
        "organization": {"id": _id(f"org:{organisation}"), "name": organisation},
        "attributes": [
            {"id": _id(f"{label}:{t}"), "taxonomy_term": {"id": _id(f"term:{t}"), "name": t}} for t in terms
        ],
        **fields,
    }


def _capacity(available: int, maximum: int) -> list[dict[str, Any]]:
    unit = {"id": _id("unit"), "name": "places"}
    return [
        {"id": _id(f"cap:{available}:{maximum}"), "unit": unit, "available": available, "maximum": maximum}
    ]


# A small Local Offer none of whose needs the starter catalogue meets in the voluntary and social-care sectors.
PORTAGE = _service(
    "portage", "Little Steps Portage", "Hartcliffe Family Centre", ["Learning disability", "Early help"],
    minimum_age=0, maximum_age=5, wait_time="3 weeks", capacities=_capacity(2, 6),
    service_areas=[{"id": _id("area:hartcliffe"), "name": "Hartcliffe"}],
)  # fmt: skip
ONLINE = _service(
    "online", "Calm Minds online counselling", "Calm Minds CIC", ["Counselling", "Targeted"],
    minimum_age=11, maximum_age=25, wait_time="1 week", capacities=_capacity(20, 50),
)  # fmt: skip
GROUP = _service(
    "group", "Bounce Back wellbeing group", "Southmead Youth Trust", ["Emotional wellbeing", "Targeted"],
    minimum_age=11, maximum_age=18, wait_time="2-3 months", capacities=_capacity(5, 8),
    service_areas=[{"id": _id("area:southmead"), "name": "Southmead"}],
)  # fmt: skip
BREAKS = _service(
    "breaks", "Short breaks", "City Council Children's Services",
    ["Social care", "Physical disability", "Learning disability", "Targeted"],
    minimum_age=5, maximum_age=16, wait_time="10 weeks", capacities=_capacity(4, 12),
)  # fmt: skip
FOOTBALL = _service("football", "Holiday football", "Juniors FC", ["Sport"], minimum_age=8, maximum_age=14)
BAD_AGES = _service("bad-ages", "Sign club", "Southmead Youth Trust", ["Deaf"], minimum_age=14, maximum_age=9)
FEED = [PORTAGE, ONLINE, GROUP, BREAKS, FOOTBALL, BAD_AGES]


def test_import_route_decline_and_dead_letter_as_a_new_user(tmp_path: Path) -> None:
    with running_platform(tmp_path) as platform:
        env = {
            **os.environ,
            "SIGNPOST_ROUTING_PORT": str(platform.ports["routing"]),
            "SIGNPOST_DATA_DIR": str(tmp_path / "data"),
            "SIGNPOST_KAFKA_BOOTSTRAP": f"127.0.0.1:{platform.ports['kafka']}",
        }
        _import_and_read_back(platform, env, tmp_path)
        _route_known_answers(platform, env)
        _poison_is_dead_lettered_and_the_partition_moves_on(platform, env)


def _signpost(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "signpost.platform.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _import_and_read_back(platform: RunningPlatform, env: dict[str, str], tmp_path: Path) -> None:
    feed_file = tmp_path / "local-offer.json"
    feed_file.write_text(json.dumps({"contents": FEED, "total_pages": 1, "page_number": 1}))
    first = _signpost(env, "catalogue", "import", str(feed_file))
    assert first.returncode == 0, first.stderr
    report = first.stdout
    assert "4 created, 0 updated, 0 unchanged, 2 skipped (6 services in the feed)" in report, report
    assert "Holiday football" in report and "no taxonomy term maps to a need code or broad area" in report
    assert "Sign club" in report and "eligibility minimum_age 14 > maximum_age 9" in report

    with serve_in_thread(oruk_feed_app(FEED)) as publisher:
        again = _signpost(env, "catalogue", "import", publisher)
    assert again.returncode == 0, again.stderr
    assert "0 created, 0 updated, 4 unchanged, 2 skipped" in again.stdout, again.stdout

    status, portage = request(platform.url("routing", f"/v1/provisions/{PORTAGE['id']}"))
    assert status == 200
    assert (portage["sector"], portage["need_codes"], portage["localities"]) == (
        "voluntary",
        ["MLD", "SLD", "PMLD"],
        ["Hartcliffe"],
    )
    assert (portage["min_age"], portage["max_age"], portage["waiting_weeks"]) == (0, 5, 3.0)
    assert portage["capacity"]["available"] == 2 and portage["capacity"]["maximum"] == 6
    assert request(platform.url("routing", f"/v1/provisions/{BREAKS['id']}"))[1]["sector"] == "social_care"

    # An ORUK client pages through /oruk/services and reads each service in full.
    seen, page = [], 1
    while True:
        status, body = request(platform.url("routing", f"/oruk/services?page={page}&per_page=3"))
        assert status == 200, body
        seen += [item["id"] for item in body["contents"]]
        if body["last_page"]:
            break
        page += 1
    assert len(seen) == len(set(seen)) == body["total_items"] == 10  # the starter six and the four imported
    for service_id in seen:
        status, service = request(platform.url("routing", f"/oruk/services/{service_id}"))
        assert status == 200 and service["id"] == service_id
    full = request(platform.url("routing", f"/oruk/services/{PORTAGE['id']}"))[1]
    assert (full["minimum_age"], full["maximum_age"], full["capacities"][0]["available"]) == (0, 5, 2)
    assert [area["name"] for area in full["service_areas"]] == ["Hartcliffe"]


def _child(age: int, **overrides: Any) -> dict[str, Any]:
    body = referral(**{"graduated_approach": None, **overrides})
    body["child"] = {**body["child"], "date_of_birth": f"{date.today().year - age}-01-01"}
    return body


def _consent(*sectors: str) -> dict[str, Any]:
    return {"family_agrees_to_early_help": True, "lawful_basis": "consent", "sharing_scope": list(sectors)}


def _decided(platform: RunningPlatform, token: str, referral_id: str, *, offers: int = 0) -> dict[str, Any]:
    def ready() -> dict[str, Any] | None:
        found: dict[str, Any] = request(platform.url("intake", f"/v1/referrals/{referral_id}"), token=token)[
            1
        ]
        return found if found["status"] != "submitted" and len(found["offers"]) >= offers else None

    decided: dict[str, Any] = wait_for(ready, timeout_s=30, what=f"referral {referral_id} decided")
    return decided


def _places(platform: RunningPlatform, provision_id: str) -> int:
    return int(request(platform.url("routing", f"/v1/provisions/{provision_id}"))[1]["capacity"]["available"])


def _route_known_answers(platform: RunningPlatform, env: dict[str, str]) -> None:
    practitioner = platform.demo_token("practitioner", "school-ashley-primary")
    admin = platform.demo_token("admin", "la-digital")  # routing's decisions are for admins

    def submit(body: dict[str, Any]) -> dict[str, Any]:
        status, answer = request(platform.url("intake", "/v1/referrals"), body, practitioner)
        assert status == 201, answer
        return dict(answer)

    learning = {"cognition_and_learning": 3}
    one = submit(
        _child(
            3,
            locality="Hartcliffe",
            need_codes=["SLD"],
            needs_profile=learning,
            consent=_consent(*ALL_SECTORS),
        )
    )
    [offer] = _decided(platform, practitioner, one["id"])["offers"]
    assert offer["provision_id"] == PORTAGE["id"]
    assert offer["explanation"] == (
        "Covers SLD; 2 of 6 places free; about 3 weeks' wait; serves Hartcliffe; takes ages 0-5 (child is 3)."
    )
    assert offer["not_chosen"] == ["Short breaks: takes ages 5-16, the child is 3"]

    nobody = submit(
        _child(
            17,
            locality="Hartcliffe",
            need_codes=["SLD"],
            needs_profile=learning,
            consent=_consent(*ALL_SECTORS),
        )
    )
    unmatched = _decided(platform, practitioner, nobody["id"])
    assert (unmatched["status"], unmatched["unmet_needs"]) == ("unmatched", ["SLD"])

    at_risk = submit(_child(8, safeguarding_concern=True))
    assert at_risk["status"] == "escalated" and at_risk["front_door"]["phone"]
    assert (
        request(platform.url("routing", f"/v1/decisions/{at_risk['id']}"), token=admin)[0] == 404
    )  # never matched

    tried = {"cycles_completed": 3, "summary": "Three cycles with OT advice", "worked": False}
    ehc = submit(_child(10, need_codes=["PD"], level_of_need="specialist", graduated_approach=tried))
    escalated = _decided(platform, practitioner, ehc["id"])
    assert (escalated["status"], escalated["escalation_reason"]) == ("escalated", "ehc_assessment")

    # Two needs in two sectors the family agreed to: a multi-agency package.
    profile = {"social_emotional_mental_health": 3, "sensory_and_physical": 2}
    package = submit(
        _child(
            12,
            locality="southmead",  # as typed: the feed's "Southmead" still serves it
            need_codes=["SEMH", "PD"],
            needs_profile=profile,
            level_of_need="targeted",
            consent=_consent("voluntary", "social_care"),
        )
    )
    routed = _decided(platform, practitioner, package["id"])
    assert [(o["provision_id"], o["needs_met"]) for o in routed["offers"]] == [
        (ONLINE["id"], ["SEMH"]),
        (BREAKS["id"], ["PD"]),
    ]
    online, breaks = routed["offers"]
    assert "about 1 week's wait" in online["explanation"]
    assert online["not_chosen"][0].startswith("Bounce Back wellbeing group: scored")
    assert "mainly a longer wait (about 13 weeks)" in online["not_chosen"][0]
    assert "Early mental health support in schools: is in health" in online["not_chosen"][1]
    assert "Children's occupational therapy: is in health" in " ".join(breaks["not_chosen"])

    # The online service declines; the local group, next best and not yet tried, is offered instead.
    online_agency = _signpost(
        env, "token", "--role", "agency", "--org", online["organisation_id"]
    ).stdout.strip()
    offers = platform.url("intake", f"/v1/referrals/{package['id']}/offers")
    status, _ = request(f"{offers}/{ONLINE['id']}/decline", {"reason": "no_capacity"}, online_agency)
    assert status == 200
    rerouted = _decided(platform, practitioner, package["id"], offers=3)
    assert [(o["provision_id"], o["status"]) for o in rerouted["offers"]] == [
        (ONLINE["id"], "declined"),
        (BREAKS["id"], "routed"),
        (GROUP["id"], "routed"),
    ]
    [again] = request(platform.url("routing", f"/v1/decisions/{package['id']}"), token=admin)[1]["reroutes"]
    assert again["data"]["replaces_provision_id"] == ONLINE["id"]

    group_org = request(platform.url("routing", f"/v1/provisions/{GROUP['id']}"))[1]["organisation_id"]
    group_agency = _signpost(env, "token", "--role", "agency", "--org", group_org).stdout.strip()
    assert request(f"{offers}/{GROUP['id']}/accept", {}, group_agency)[0] == 200
    wait_for(lambda: _places(platform, GROUP["id"]) == 4, timeout_s=30, what="a place held")
    assert request(f"{offers}/{GROUP['id']}/start", {}, group_agency)[0] == 200
    done = {"outcome": "needs_partly_met", "needs_profile_after": {"social_emotional_mental_health": 2}}
    assert request(f"{offers}/{GROUP['id']}/complete", done, group_agency)[0] == 200
    wait_for(lambda: _places(platform, GROUP["id"]) == 5, timeout_s=30, what="the place given back")


def _poison_is_dead_lettered_and_the_partition_moves_on(
    platform: RunningPlatform, env: dict[str, str]
) -> None:
    sentinel = f"sentinel-{uuid.uuid4().hex[:8]}"
    asyncio.run(_publish_poison_then(sentinel, env["SIGNPOST_KAFKA_BOOTSTRAP"]))
    admin = platform.demo_token("admin", "la-digital")
    # The sentinel sits behind the poison on the same partition: routing reaching it shows nothing stalled.
    wait_for(
        lambda: request(platform.url("routing", f"/v1/decisions/{sentinel}"), token=admin)[0] == 200,
        timeout_s=30,
        what="the event behind the poison routed",
    )

    def listed() -> str | None:
        out = _signpost(env, "dlq", "list").stdout
        routing = [line for line in out.splitlines() if " routing " in line]
        return out if len(routing) == 2 else None

    out = wait_for(listed, timeout_s=30, what="both poison messages dead-lettered by routing")
    assert "body: malformed JSON" in out and "header ce_type: unknown event type" in out
    offset = next(line.split()[0] for line in out.splitlines() if " routing " in line and "malformed" in line)
    shown = _signpost(env, "dlq", "show", offset)
    assert shown.returncode == 0 and "refused by: routing" in shown.stdout and "poison-key" in shown.stdout


async def _publish_poison_then(sentinel: str, bootstrap: str) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=False)
    await producer.start()
    try:
        event: Envelope[EventData] = new_event(
            ReferralSubmittedV1(
                referral_id=sentinel,
                age_years=3,
                locality="Hartcliffe",
                setting_id="URN100002",
                need_codes=[NeedCode.SLD],
                broad_areas=broad_areas([NeedCode.SLD]),
                level_of_need=LevelOfNeed.EARLY_HELP,
                submitted_at=datetime.now(UTC),
            ),
            source="/tests/walkthrough",
            tenant="E06000023",
        )
        headers = to_kafka_headers(event)
        broken = [(k, v.encode()) for k, v in {**headers, "ce_id": str(uuid.uuid4())}.items()]
        unknown = [
            (k, v.encode())
            for k, v in {
                **headers,
                "ce_id": str(uuid.uuid4()),
                "ce_type": "uk.signpost.referral.teleported.v1",
            }.items()
        ]
        await producer.send_and_wait(
            "signpost.referrals", b'{"referral_id": ', key=b"poison-key", headers=broken
        )
        await producer.send_and_wait("signpost.referrals", b"{}", key=b"poison-key", headers=unknown)
        await producer.send_and_wait(
            "signpost.referrals",
            to_kafka_value(event),
            key=b"poison-key",
            headers=[(k, v.encode()) for k, v in headers.items()],
        )
    finally:
        await producer.stop()
