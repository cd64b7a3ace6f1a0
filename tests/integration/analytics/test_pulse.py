"""The pulse on real servers: events through Kafka in, the numbers they imply out, suppressed for analysts."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from tests.analytics_events import T0, TENANT, lifecycle
from tests.conftest import eventually
from tests.integration.analytics.conftest import PERIOD, Analytics
from tests.integration.test_kafka_events import next_record, reading


def scenario() -> list:  # type: ignore[type-arg]
    events = []
    for n in range(6):
        events += lifecycle(f"ash-{n}", "completed", locality="Ashley", child_ref=f"child-{n}")
    for n in range(2):
        events += lifecycle(f"bre-esc-{n}", "escalated", locality="Brent", setting="URN200002")
    for n in range(5):
        events += lifecycle(f"bre-{n}", "accepted", locality="Brent", setting="URN200002", needs=("ASD",))
    events += lifecycle("cob-0", "unmatched", locality="Cobham", needs=("PMLD",), setting="URN300003")
    return events


EXPECTED = {
    "submitted": 14,
    "routed": 11,
    "accepted": 11,
    "started": 6,
    "completed": 6,
    "escalated": 2,
    "unmatched": 1,
}


async def test_the_numbers_the_events_imply_each_event_once_in_any_order(analytics: Analytics) -> None:
    events = scenario()
    late = lifecycle("ash-late", "completed", locality="Ashley", at=T0 + timedelta(days=3))
    # Out of order: the agency's moves arrive before the referral's submission.
    await analytics.publish(list(reversed(late)))
    await analytics.publish(events)
    await analytics.publish(events[:5])  # redelivered: the same event ids again
    admin = await analytics.until(
        {
            name: value + (1 if name in {"submitted", "routed", "accepted", "started", "completed"} else 0)
            for name, value in EXPECTED.items()
        }
    )
    assert admin["escalation_rate"]["value"] == round(2 / 15, 3)
    assert admin["days_to_route"]["value"] == 1.0 and admin["days_to_start"]["value"] == 4.0
    assert admin["needs_change"]["value"] == 2.0  # 3 at referral, 1 at completion

    analyst = await analytics.summary("analyst")
    assert analyst["submitted"] == {"value": 15, "suppressed": False, "reason": None}
    assert analyst["escalated"] == {"value": None, "suppressed": True, "reason": "small_number"}
    assert analyst["escalation_rate"]["reason"] == "derived_from_suppressed"
    assert analyst["unmatched"]["suppressed"] and analyst["completed"]["value"] == 7


async def test_drill_down_suppresses_a_lone_small_cell_and_its_complement(analytics: Analytics) -> None:
    await analytics.publish(scenario())
    await analytics.until(EXPECTED)
    as_admin = await analytics.get("/v1/pulse/breakdown", measure="submitted", group_by="locality")
    assert {row["group"]: row["value"]["value"] for row in as_admin["rows"]} == {
        "Ashley": 6,
        "Brent": 7,
        "Cobham": 1,
    }
    as_analyst = await analytics.get(
        "/v1/pulse/breakdown", "analyst", measure="submitted", group_by="locality"
    )
    assert as_analyst["partition"] is True and as_analyst["total"]["value"]["value"] == 14
    assert {row["group"]: row["value"]["reason"] for row in as_analyst["rows"]} == {
        "Cobham": "small_number",
        "Ashley": "complementary",  # else 14 - 7 - 6 gives Cobham's 1
        "Brent": None,
    }
    by_need = await analytics.get(
        "/v1/pulse/breakdown", measure="submitted", group_by="need", locality="Brent"
    )
    assert {row["group"]: row["value"]["value"] for row in by_need["rows"]} == {"ASD": 5, "SLCN": 2}
    picked = await analytics.summary(locality="Brent", need="ASD")
    assert picked["submitted"]["value"] == 5 and picked["accepted"]["value"] == 5
    works = await analytics.get("/v1/pulse/what-works", group_by="provision")
    assert works["rows"][0]["group"] == "speech-therapy" and works["rows"][0]["needs_change"]["value"] == 2.0
    assert works["rows"][0]["outcomes"] == {"needs_met": {"value": 6, "suppressed": False, "reason": None}}
    unmet = await analytics.get("/v1/pulse/unmet-demand")
    assert [(need["need"], need["by_locality"]) for need in unmet["needs"] if need["unmatched"]["value"]] == [
        ("PMLD", {"Cobham": {"value": 1, "suppressed": False, "reason": None}})
    ]
    trend = await analytics.get("/v1/pulse/trend", measure="submitted", interval="week")
    assert sum(point["value"]["value"] for point in trend["points"]) == 14
    legacy = (await analytics.client.get("/v1/pulse", headers=analytics.auth("analyst"))).json()
    assert legacy["submitted"] == 14 and legacy["by_outcome"]["unmatched"] is None
    assert legacy["suppressed"]["by_outcome.unmatched"] == "small_number"


async def test_a_ward_or_setting_id_with_a_slash_intake_took_can_be_drilled_into(
    analytics: Analytics,
) -> None:
    """Intake takes a locality or setting id with "/" (a ward "Lockleaze/Frome Vale"): the pulse filters on it."""
    ward, setting = "Lockleaze/Frome Vale", "LA/0042"
    await analytics.publish(
        [
            *scenario(),
            *[
                event
                for n in range(3)
                for event in lifecycle(f"lfv-{n}", "routed", locality=ward, setting=setting)
            ],
        ]
    )
    await analytics.until({"submitted": 17})
    by_need = await analytics.get("/v1/pulse/breakdown", measure="submitted", group_by="need", locality=ward)
    assert by_need["filters"] == {"locality": ward}
    assert {row["group"]: row["value"]["value"] for row in by_need["rows"]} == {"SLCN": 3}
    in_setting = await analytics.summary(setting=setting)
    assert in_setting["submitted"]["value"] == 3

    piped = await analytics.client.get(
        "/v1/pulse/summary", params={**PERIOD, "locality": "Ashley|Brent"}, headers=analytics.auth("admin")
    )
    assert piped.status_code == 422
    [problem] = piped.json()["detail"]
    assert problem["field"] == "query.locality"
    assert problem["message"] == "must be 1 to 100 letters, digits, spaces and . _ : ' & ( ) / -"


async def test_a_need_or_sector_outside_the_vocabulary_is_refused_listing_the_allowed_values(
    analytics: Analytics,
) -> None:
    """A typo ("asd", "police") was read as no demand, 200 with zeros: refused, as intake refuses it."""
    for name, value, allowed in (
        ("need", "asd", "'ASD'"),
        ("sector", "Health", "'health'"),
        ("sector", "police", "'social_care'"),
    ):
        response = await analytics.client.get(
            "/v1/pulse/summary", params={**PERIOD, name: value}, headers=analytics.auth("admin")
        )
        assert response.status_code == 422, response.text
        [problem] = response.json()["detail"]
        assert problem["field"] == f"query.{name}" and allowed in problem["message"]


async def test_coverage_counts_registered_settings_that_referred(analytics: Analytics) -> None:
    admin = analytics.auth("admin")
    for setting, locality in (("URN100001", "Ashley"), ("URN100002", "Ashley"), ("URN200002", "Brent")):
        body = {"name": f"School {setting}", "locality": locality, "phase": "primary"}
        response = await analytics.client.put(f"/v1/settings-register/{setting}", json=body, headers=admin)
        assert response.status_code == 202, response.text
    async with reading(analytics.topics.settings_register, analytics.settings) as consumer:
        registered = dict((await next_record(consumer)).headers)
    assert registered["ce_source"] == b"/signpost/analytics"  # the form every producer's source takes
    forbidden = await analytics.client.put(
        "/v1/settings-register/URN9", json={"name": "x", "locality": "y"}, headers=analytics.auth("analyst")
    )
    assert forbidden.status_code == 403
    await analytics.publish(scenario())
    await analytics.until(EXPECTED)

    async def coverage() -> dict | None:  # type: ignore[type-arg]
        found = await analytics.get("/v1/pulse/summary")
        return found["coverage"] if found["coverage"]["registered_settings"] == 3 else None

    assert (await eventually(coverage, what="register folded")) == {
        "registered_settings": 3,
        "referring_settings": 2,
        "share": {"value": 0.667, "suppressed": False, "reason": None},
        "unregistered_referring": 1,  # URN300003 referred but is not registered
    }
    ashley = (await analytics.get("/v1/pulse/summary", locality="Ashley"))["coverage"]
    assert (ashley["registered_settings"], ashley["referring_settings"]) == (2, 1)


async def test_a_setting_id_with_a_space_or_slash_intake_took_can_be_registered_and_counted(
    analytics: Analytics,
) -> None:
    """Intake takes a setting id with a space or "/": the register takes it too, so it counts towards coverage."""
    admin = analytics.auth("admin")
    spaced, slashed = "Ashley Primary", "LA/0042"
    body = {"name": "A school", "locality": "Ashley", "phase": "primary"}
    # A "/" names the same setting sent as it is or as %2F.
    sent = {"Ashley%20Primary": spaced, "LA/0042": slashed, "LA%2F0042": slashed}
    for path, setting_id in sent.items():
        response = await analytics.client.put(f"/v1/settings-register/{path}", json=body, headers=admin)
        assert response.status_code == 202, response.text
        assert response.json()["setting_id"] == setting_id
    await analytics.publish(lifecycle("la-0", "routed", setting=slashed))
    await analytics.until({"submitted": 1})

    async def coverage() -> dict | None:  # type: ignore[type-arg]
        found = (await analytics.get("/v1/pulse/summary"))["coverage"]
        return found if found["registered_settings"] == 2 and found["referring_settings"] == 1 else None

    found = await eventually(coverage, what="both settings registered, one referring")
    assert found["unregistered_referring"] == 0
    listed = await analytics.client.get("/v1/settings-register", headers=admin)
    assert [(setting["setting_id"], setting["open"]) for setting in listed.json()] == [
        (spaced, True),
        (slashed, True),
    ]


async def test_the_register_refuses_a_blank_name_or_locality_and_an_id_with_surrounding_space(
    analytics: Analytics,
) -> None:
    """Intake strips a referral's setting id, so "URN100003 " registered would never match one; a
    locality no referral could name (too long, or with a character intake refuses) is refused too."""
    admin = analytics.auth("admin")
    body = {"name": "Ashley Primary", "locality": "Ashley", "phase": "primary"}
    for field, value in (
        ("name", "   "),
        ("locality", "   "),
        ("locality", "A" * 65),
        ("locality", "Ashley (north)"),
    ):
        refused = await analytics.client.put(
            "/v1/settings-register/URN100002", json={**body, field: value}, headers=admin
        )
        assert refused.status_code == 422, refused.text
        assert [problem["field"] for problem in refused.json()["detail"]] == [f"body.{field}"]
    padded = await analytics.client.put(
        "/v1/settings-register/URN100002", json={**body, "locality": " Ashley "}, headers=admin
    )
    assert padded.status_code == 202, padded.text
    for path in ("URN100003%20", "%20URN100003"):
        spaced = await analytics.client.put(f"/v1/settings-register/{path}", json=body, headers=admin)
        assert spaced.status_code == 422, spaced.text
        assert [problem["field"] for problem in spaced.json()["detail"]] == ["path.setting_id"]


async def test_benchmarking_names_each_area_and_suppresses_small_ones(analytics: Analytics) -> None:
    neighbour = "E06000022"
    await analytics.publish(scenario())
    await analytics.publish(
        [event for n in range(3) for event in lifecycle(f"nb-{n}", "escalated", tenant=neighbour)]
    )
    await analytics.until(EXPECTED)

    async def listed() -> dict[str, dict[str, Any]] | None:
        # The neighbour's 3 are withheld from everyone here: counted once it is listed, withheld.
        table = await analytics.get("/v1/benchmarking", "analyst", measure="escalation_rate")
        areas = {area["tenant"]: area for area in table["areas"]}
        return areas if neighbour in areas and areas[neighbour]["submitted"]["suppressed"] else None

    areas = await eventually(listed, what="the neighbour listed")
    assert set(areas) == {TENANT, neighbour}
    assert areas[TENANT]["value"]["reason"] == "derived_from_suppressed"  # 2 escalations
    assert areas[TENANT]["submitted"]["value"] == 14
    # An admin sees its own area in full, and the neighbour's small numbers suppressed, as an analyst does.
    as_admin = await analytics.get("/v1/benchmarking", measure="escalation_rate")
    assert {area["tenant"]: area["value"] for area in as_admin["areas"]} == {
        TENANT: {"value": 0.143, "suppressed": False, "reason": None},
        neighbour: {"value": None, "suppressed": True, "reason": "derived_from_suppressed"},
    }
    assert as_admin["suppression_threshold"] == 5 and as_admin["suppression"]["threshold"] == 5
    other_area = await analytics.get("/v1/pulse/summary", tenant=neighbour)
    assert other_area["suppression_threshold"] == 5 and other_area["suppression"]["threshold"] == 5
    figures = {item["measure"]: item["current"] for item in other_area["measures"]}
    assert figures["submitted"] == {"value": None, "suppressed": True, "reason": "small_number"}


async def test_only_analysts_ops_and_admins_and_only_their_own_area(analytics: Analytics) -> None:
    client = analytics.client
    practitioner = await client.get("/v1/pulse/summary", headers=analytics.auth("practitioner"))
    assert practitioner.status_code == 403
    other_area = await client.get(
        "/v1/pulse/summary", params={"tenant": "E06000022"}, headers=analytics.auth("analyst")
    )
    assert other_area.status_code == 403
    assert (await client.get("/v1/pulse/summary", headers=analytics.auth("ops"))).status_code == 200
    backwards = await client.get(
        "/v1/pulse/summary",
        params={"from": "2026-03-10", "to": "2026-03-01"},
        headers=analytics.auth("admin"),
    )
    assert backwards.status_code == 422
    assert backwards.json()["detail"][0]["field"] == "query.from"
    ancient = await client.get(
        "/v1/pulse/summary", params={"from": "0001-01-02"}, headers=analytics.auth("admin")
    )
    assert ancient.status_code == 422 and ancient.json()["detail"][0]["field"] == "query.from"
    # Only `to`, on the first day there is: the default `from` (27 days before) cannot even be computed.
    first_day = await client.get(
        "/v1/benchmarking", params={"measure": "routed", "to": "0001-01-01"}, headers=analytics.auth("admin")
    )
    assert first_day.status_code == 422 and first_day.json()["detail"][0]["field"] == "query.to"
    pointless = await client.get(
        "/v1/pulse/breakdown",
        params={**PERIOD, "measure": "submitted", "group_by": "setting", "setting": "URN1"},
        headers=analytics.auth("admin"),
    )
    assert pointless.status_code == 422 and pointless.json()["detail"][0]["field"] == "query.group_by"
    unknown = await client.get(
        "/v1/pulse/breakdown",
        params={"measure": "happiness", "group_by": "need"},
        headers=analytics.auth("admin"),
    )
    assert unknown.status_code == 422 and unknown.json()["detail"][0]["field"] == "query.measure"


async def test_a_message_that_is_not_an_event_is_dead_lettered_and_the_rest_counted(
    analytics: Analytics,
) -> None:
    await analytics.producer.send_and_wait(
        analytics.topics.referrals,
        b"{not json",
        key=b"x",
        headers=[("ce_type", b"uk.signpost.referral.submitted.v1")],
    )
    await analytics.publish(lifecycle("after-poison", "routed"))
    await analytics.until({"submitted": 1, "routed": 1})
    async with reading(analytics.topics.dead_letters, analytics.settings) as consumer:
        letter = await next_record(consumer)
    headers = dict(letter.headers)
    assert letter.value == b"{not json" and headers["dlq_service"] == b"analytics"
    assert headers["dlq_kind"] == b"not-an-event" and b"missing" in headers["dlq_error"]
