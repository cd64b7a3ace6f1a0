"""Intake's API on real servers: validation, idempotency, safeguarding, the closed loop, audit."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest
from signpost.intake.app import create_app as create_intake
from signpost.intake.offers.keys import offer_keys
from signpost.intake.referrals.models import REFERRALS
from signpost.intake.referrals.service import AWAITING_ROUTING
from signpost.shared.service import Runtime
from signpost.shared.settings import Settings

from tests.conftest import Tokens, eventually, settings_for
from tests.factories import referral
from tests.servers import KafkaServer, MongoServer

pytestmark = pytest.mark.asyncio(loop_scope="module")


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def submit(
    intake: httpx.AsyncClient, tokens: Tokens, body: dict[str, Any] | None = None, **headers: str
) -> httpx.Response:
    return await intake.post(
        "/v1/referrals", json=body or referral(), headers={**auth(tokens.practitioner()), **headers}
    )


async def test_a_valid_referral_is_accepted_with_its_location(
    intake: httpx.AsyncClient, tokens: Tokens
) -> None:
    response = await submit(intake, tokens)
    assert response.status_code == 201, response.text
    body = response.json()
    assert response.headers["location"] == f"/v1/referrals/{body['id']}"
    assert body["status"] == "submitted" and body["front_door"] is None
    view = (await intake.get(response.headers["location"], headers=auth(tokens.practitioner()))).json()
    assert view["child_ref"].startswith("cr_") and view["age_years"] >= 6
    assert "child" not in view and "Zephyrine" not in str(view)  # identifiers only via the audited endpoint
    assert [entry["type"] for entry in view["timeline"]] == ["uk.signpost.referral.submitted.v1"]


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        (referral(need_codes=["XYZ"]), "body.need_codes.0", "Input should be"),
        (referral(need_codes=["ASD", "ASD"]), "body.need_codes", "each value may appear once"),
        (referral(surprise=1), "body.surprise", "Extra inputs are not permitted"),
        (
            referral(needs_profile={"communication_and_interaction": 9}),
            "body.needs_profile.communication_and_interaction",
            "less than or equal to 4",
        ),
        (
            referral(child={**referral()["child"], "nhs_number": "9434765918"}),
            "body.child.nhs_number",
            "check digit",
        ),
        (  # 9434765919 in Arabic-Indic digits: one number, one pseudonymous reference
            referral(
                child={
                    **referral()["child"],
                    "nhs_number": "\u0669\u0664\u0663\u0664\u0667\u0666\u0665\u0669\u0661\u0669",
                }
            ),
            "body.child.nhs_number",
            "10 digits (0-9)",
        ),
        (
            referral(child={**referral()["child"], "date_of_birth": "1990-01-01"}),
            "body.child.date_of_birth",
            "older than 25",
        ),
        (  # locality and setting go into events, to every partner and for good
            referral(locality="17 Marigold Lane BS4 1QX"),
            "body.locality",
            "looks like a postcode",
        ),
        (referral(setting_id="943 476 5919"), "body.setting_id", "looks like an NHS number"),
        (
            referral(child={**referral()["child"], "given_name": "x" * 300}),
            "body.child.given_name",
            "should have at most 100 characters, not 300",
        ),
        (
            referral(referrer={**referral()["referrer"], "name": "   "}),
            "body.referrer.name",
            "must not be empty",
        ),
        (
            referral(child={**referral()["child"], "address": {"line1": "1 Road", "postcode": "NOT A CODE"}}),
            "body.child.address.postcode",
            "not a UK postcode",
        ),
        (
            referral(
                consent={
                    "family_agrees_to_early_help": False,
                    "lawful_basis": "consent",
                    "sharing_scope": ["health"],
                }
            ),
            "body",
            "family's agreement",
        ),
    ],
)
async def test_bad_input_gets_422_with_the_field_and_a_plain_message(
    intake: httpx.AsyncClient, tokens: Tokens, body: dict[str, Any], field: str, words: str
) -> None:
    response = await submit(intake, tokens, body)
    assert response.status_code == 422
    problems = response.json()["detail"]
    assert any(p["field"] == field and words in p["message"] for p in problems), problems


async def test_a_body_that_is_not_json_gets_400_saying_so(intake: httpx.AsyncClient, tokens: Tokens) -> None:
    headers = auth(tokens.practitioner())
    broken = await intake.post(
        "/v1/referrals",
        content=b'{"locality": "Ashley",',
        headers={**headers, "content-type": "application/json"},
    )
    assert broken.status_code == 400
    assert broken.json() == {
        "detail": "the body is not valid JSON: Expecting property name enclosed in double quotes at character 22"
    }
    for content_type in ("text/plain", "application/x-www-form-urlencoded"):
        other = await intake.post(
            "/v1/referrals", content=b"locality=Ashley", headers={**headers, "content-type": content_type}
        )
        assert other.status_code == 400, content_type
        assert other.json() == {"detail": "the body must be JSON, sent with Content-Type: application/json"}
    wrong_shape = await intake.post("/v1/referrals", json=["a list"], headers=headers)
    assert wrong_shape.status_code == 422  # JSON, just not a referral


async def test_patterns_are_refused_in_words_not_as_regular_expressions(
    intake: httpx.AsyncClient, tokens: Tokens
) -> None:
    headers = auth(tokens.practitioner())

    async def problem(response: httpx.Response) -> tuple[str, str]:
        assert response.status_code == 422, response.text
        [found] = response.json()["detail"]
        return found["field"], found["message"]

    assert await problem(await intake.get("/v1/referrals", params={"cursor": "page-2"}, headers=headers)) == (
        "query.cursor",
        "must be the next_cursor an earlier page answered, as it was given",
    )
    keyed = await intake.post(
        "/v1/referrals", json=referral(), headers={**headers, "Idempotency-Key": "retry #1 of 3"}
    )
    assert await problem(keyed) == ("header.Idempotency-Key", "must be made of A-Z a-z 0-9 _ . : - only")
    phoned = await submit(intake, tokens, referral(referrer={**referral()["referrer"], "phone": "call me"}))
    assert await problem(phoned) == ("body.referrer.phone", "must be 6 to 20 digits, spaces and + ( ) -")


async def test_a_filter_the_list_does_not_take_is_refused_not_ignored(
    intake: httpx.AsyncClient, tokens: Tokens
) -> None:
    listed = await intake.get(
        "/v1/referrals", params={"statuss": "routed"}, headers=auth(tokens.practitioner())
    )
    assert listed.status_code == 422  # not every referral, read as the routed ones
    [problem] = listed.json()["detail"]
    assert problem["field"] == "query.statuss"
    assert problem["message"].startswith("is not a parameter here; this takes cursor, limit, locality")


async def test_oversized_bodies_get_413(intake: httpx.AsyncClient, tokens: Tokens) -> None:
    response = await submit(intake, tokens, referral(details="x" * 100_000))
    assert response.status_code == 413
    assert "limit" in response.json()["detail"]


async def test_idempotency_key_makes_retries_safe(intake: httpx.AsyncClient, tokens: Tokens) -> None:
    first = await submit(intake, tokens, referral(), **{"Idempotency-Key": "retry-key-0001"})
    again = await submit(intake, tokens, referral(), **{"Idempotency-Key": "retry-key-0001"})
    assert first.status_code == again.status_code == 201
    assert again.json()["id"] == first.json()["id"] and again.headers["idempotent-replayed"] == "true"
    different = await submit(
        intake, tokens, referral(urgency="urgent"), **{"Idempotency-Key": "retry-key-0001"}
    )
    assert different.status_code == 409 and "different request body" in different.json()["detail"]
    concurrent = await asyncio.gather(
        *(submit(intake, tokens, referral(), **{"Idempotency-Key": "retry-key-0002"}) for _ in range(4))
    )
    assert {r.status_code for r in concurrent} == {201}
    assert len({r.json()["id"] for r in concurrent}) == 1


async def test_safeguarding_escalates_at_once_and_says_whom_to_phone(
    intake: httpx.AsyncClient, tokens: Tokens, module_settings: Settings
) -> None:
    response = await submit(intake, tokens, referral(safeguarding_concern=True))
    assert response.status_code == 201
    body = response.json()
    assert body["status"] == "escalated"
    assert body["front_door"]["phone"] == module_settings.front_door_phone
    assert module_settings.front_door_name in body["front_door"]["message"]
    view = (await intake.get(f"/v1/referrals/{body['id']}", headers=auth(tokens.practitioner()))).json()
    assert view["escalation_reason"] == "safeguarding"
    assert [e["type"] for e in view["timeline"]] == [
        "uk.signpost.referral.submitted.v1",
        "uk.signpost.referral.escalated.v1",
    ]


async def routed(
    intake: httpx.AsyncClient, tokens: Tokens, body: dict[str, Any] | None = None
) -> dict[str, Any]:
    referral_id = (await submit(intake, tokens, body)).json()["id"]
    return await eventually(lambda: view_if(intake, tokens, referral_id, "routed"), what="referral routed")


async def view_if(
    intake: httpx.AsyncClient, tokens: Tokens, referral_id: str, status: str
) -> dict[str, Any] | None:
    view = (await intake.get(f"/v1/referrals/{referral_id}", headers=auth(tokens.practitioner()))).json()
    return view if view["status"] == status else None


async def move(
    intake: httpx.AsyncClient,
    token: str,
    referral_id: str,
    provision_id: str,
    action: str,
    body: dict[str, Any] | None = None,
) -> httpx.Response:
    return await intake.post(
        f"/v1/referrals/{referral_id}/offers/{provision_id}/{action}", json=body, headers=auth(token)
    )


COMPLETION = {"outcome": "needs_met", "needs_profile_after": {"communication_and_interaction": 1}}


async def test_the_closed_loop_accept_start_complete(intake: httpx.AsyncClient, tokens: Tokens) -> None:
    view = await routed(intake, tokens)
    assert [o["provision_id"] for o in view["offers"]] == ["autism-outreach"]
    agency = tokens.agency("la-inclusion-service")
    offers = (await intake.get("/v1/offers", params={"status": "routed"}, headers=auth(agency))).json()[
        "items"
    ]
    mine = next(o for o in offers if o["referral_id"] == view["id"])
    assert mine["allowed_moves"] == ["accept", "decline"]  # the moves an offer's endpoints take
    assert "Zephyrine" not in str(offers)

    for action, body, status in (
        ("accept", None, "accepted"),
        ("start", None, "in_progress"),
        ("complete", COMPLETION, "completed"),
    ):
        response = await move(intake, agency, view["id"], "autism-outreach", action, body)
        assert response.status_code == 200, response.text
        assert response.json()["status"] == status
    final = (await intake.get(f"/v1/referrals/{view['id']}", headers=auth(tokens.practitioner()))).json()
    assert [e["type"].rsplit(".", 2)[-2] for e in final["timeline"]] == [
        "submitted",
        "routed",
        "offer_accepted",
        "offer_started",
        "offer_completed",
    ]
    assert final["allowed_moves"] == []


async def test_an_illegal_move_is_409_with_the_state_and_allowed_moves(
    intake: httpx.AsyncClient, tokens: Tokens
) -> None:
    view = await routed(intake, tokens)
    response = await move(
        intake, tokens.agency("la-inclusion-service"), view["id"], "autism-outreach", "complete", COMPLETION
    )
    assert response.status_code == 409
    assert response.json()["current_status"] == "routed"
    assert response.json()["allowed_moves"] == ["accept", "decline"]


async def test_a_declined_offer_shows_the_practitioner_the_reason(
    intake: httpx.AsyncClient, tokens: Tokens
) -> None:
    view = await routed(intake, tokens)
    agency = tokens.agency("la-inclusion-service")
    missing_note = await move(intake, agency, view["id"], "autism-outreach", "decline", {"reason": "other"})
    assert missing_note.status_code == 422
    response = await move(
        intake,
        agency,
        view["id"],
        "autism-outreach",
        "decline",
        {"reason": "no_capacity", "note": "Waiting list closed until January"},
    )
    assert response.status_code == 200
    seen = (await intake.get(f"/v1/referrals/{view['id']}", headers=auth(tokens.practitioner()))).json()
    assert seen["status"] == "declined" and seen["offers"][0]["status"] == "declined"
    assert seen["timeline"][-1]["note"] == "Waiting list closed until January"


async def test_a_package_across_sectors_moves_with_its_offers(
    intake: httpx.AsyncClient, tokens: Tokens
) -> None:
    view = await routed(intake, tokens, referral(need_codes=["SEMH", "SPLD"]))
    assert {o["provision_id"] for o in view["offers"]} == {"early-mental-health", "specialist-teaching"}
    health, education = tokens.agency("mhst-schools"), tokens.agency("la-inclusion-service")
    assert (
        await move(
            intake, education, view["id"], "specialist-teaching", "decline", {"reason": "not_eligible"}
        )
    ).json()["status"] == "routed"
    assert (await move(intake, health, view["id"], "early-mental-health", "accept")).json()[
        "status"
    ] == "accepted"
    # Another agency's offer is not yours to move.
    assert (await move(intake, education, view["id"], "early-mental-health", "start")).status_code == 404


async def test_allowed_moves_are_those_the_callers_endpoints_take(
    intake: httpx.AsyncClient, tokens: Tokens
) -> None:
    view = await routed(intake, tokens, referral(need_codes=["SEMH", "SPLD"]))
    health, education = tokens.agency("mhst-schools"), tokens.agency("la-inclusion-service")
    accepted = await move(intake, health, view["id"], "early-mental-health", "accept")
    assert accepted.json()["allowed_moves"] == []  # an agency moves its offers, not the referral
    seen = (await intake.get(f"/v1/referrals/{view['id']}", headers=auth(tokens.practitioner()))).json()
    assert (seen["status"], seen["allowed_moves"]) == ("accepted", ["withdraw"])

    async def offer_moves(token: str) -> list[str]:
        items = (await intake.get("/v1/offers", headers=auth(token))).json()["items"]
        return next(list(o["allowed_moves"]) for o in items if o["referral_id"] == view["id"])

    assert await offer_moves(health) == ["start"]
    assert await offer_moves(education) == ["accept", "decline"]


async def test_withdraw_closes_open_offers_and_nothing_moves_after(
    intake: httpx.AsyncClient, tokens: Tokens
) -> None:
    view = await routed(intake, tokens)
    practitioner = auth(tokens.practitioner())
    response = await intake.post(
        f"/v1/referrals/{view['id']}/withdraw", json={"reason": "needs_met"}, headers=practitioner
    )
    assert response.status_code == 200 and response.json()["status"] == "withdrawn"
    assert response.json()["offers"][0]["status"] == "withdrawn"
    late = await move(intake, tokens.agency("la-inclusion-service"), view["id"], "autism-outreach", "accept")
    assert late.status_code == 409 and late.json()["allowed_moves"] == []
    again = await intake.post(
        f"/v1/referrals/{view['id']}/withdraw", json={"reason": "needs_met"}, headers=practitioner
    )
    assert again.status_code == 409
    info = await intake.post(
        f"/v1/referrals/{view['id']}/information", json={"text": "more"}, headers=practitioner
    )
    assert info.status_code == 409 and info.json()["current_status"] == "withdrawn"


async def test_information_is_added_never_overwritten(intake: httpx.AsyncClient, tokens: Tokens) -> None:
    view = await routed(intake, tokens)
    response = await intake.post(
        f"/v1/referrals/{view['id']}/information",
        json={
            "text": "Now also struggling at lunchtimes",
            "needs_profile": {"social_emotional_mental_health": 3},
        },
        headers=auth(tokens.practitioner()),
    )
    assert response.status_code == 200
    updated = response.json()
    assert updated["needs_profile"]["social_emotional_mental_health"] == 3
    assert updated["timeline"][-1]["type"] == "uk.signpost.referral.information_added.v1"
    assert len(updated["timeline"]) == len(view["timeline"]) + 1


async def test_identifying_details_are_released_only_as_allowed_and_every_read_audited(
    intake: httpx.AsyncClient, tokens: Tokens
) -> None:
    view = await routed(
        intake,
        tokens,
        referral(
            consent={
                "family_agrees_to_early_help": True,
                "lawful_basis": "consent",
                "sharing_scope": ["education"],
            }
        ),
    )
    path = f"/v1/referrals/{view['id']}/child"
    own = await intake.get(path, params={"purpose": "correction"}, headers=auth(tokens.practitioner()))
    assert own.status_code == 200 and own.json()["family_name"] == "Quillfeather"
    offered = await intake.get(
        path, params={"purpose": "contact_family"}, headers=auth(tokens.agency("la-inclusion-service"))
    )
    assert offered.status_code == 200
    mislabelled = await intake.get(  # the audit trail would say the referrer checked what it sent
        path, params={"purpose": "correction"}, headers=auth(tokens.agency("la-inclusion-service"))
    )
    assert mislabelled.status_code == 422 and mislabelled.json()["detail"][0]["field"] == "query.purpose"
    unrelated = await intake.get(
        path, params={"purpose": "contact_family"}, headers=auth(tokens.agency("nhs-community-slt"))
    )
    assert unrelated.status_code == 404
    other_school = await intake.get(
        path, params={"purpose": "correction"}, headers=auth(tokens.practitioner("school-elsewhere"))
    )
    assert other_school.status_code == 404
    for role in ("analyst", "ops", "admin"):
        refused = await intake.get(
            path, params={"purpose": "assessment"}, headers=auth(tokens.token(role, "la-digital"))
        )
        assert refused.status_code == 403, role
    audit = await intake.get("/v1/audit", params={"referral_id": view["id"]}, headers=auth(tokens.admin()))
    assert audit.status_code == 200
    assert sorted((r["organisation"], r["purpose"]) for r in audit.json()) == [
        ("la-inclusion-service", "contact_family"),
        ("school-ashley-primary", "correction"),
    ]
    assert (await intake.get("/v1/audit", headers=auth(tokens.practitioner()))).status_code == 403


async def test_an_agency_that_declined_its_offer_no_longer_reads_the_childs_details(
    intake: httpx.AsyncClient, tokens: Tokens
) -> None:
    view = await routed(intake, tokens)
    agency = tokens.agency("la-inclusion-service")
    path = f"/v1/referrals/{view['id']}/child"
    before = await intake.get(path, params={"purpose": "contact_family"}, headers=auth(agency))
    assert before.status_code == 200, before.text
    declined = await move(
        intake, agency, view["id"], "autism-outreach", "decline", {"reason": "not_eligible"}
    )
    assert declined.status_code == 200, declined.text
    after = await intake.get(path, params={"purpose": "contact_family"}, headers=auth(agency))
    assert after.status_code == 403
    assert (
        after.json()["detail"] == "your organisation's offer was declined or withdrawn before it was taken up"
    )
    # The referring school still may.
    own = await intake.get(path, params={"purpose": "correction"}, headers=auth(tokens.practitioner()))
    assert own.status_code == 200


async def test_timeline_notes_follow_the_childs_details(intake: httpx.AsyncClient, tokens: Tokens) -> None:
    """Notes are free text that may name the family: an agency that declined, and an admin, read
    only their own organisation's and the platform's; the referring school reads every one."""
    view = await routed(intake, tokens)
    agency = tokens.agency("la-inclusion-service")
    declined = await move(
        intake, agency, view["id"], "autism-outreach", "decline",
        {"reason": "other", "note": "Already seen by our team under another name"},
    )  # fmt: skip
    assert declined.status_code == 200, declined.text
    withdrawn = await intake.post(
        f"/v1/referrals/{view['id']}/withdraw",
        json={"reason": "moved_away", "note": "Family moving to Leeds on Friday"},
        headers=auth(tokens.practitioner()),
    )
    assert withdrawn.status_code == 200, withdrawn.text

    async def notes(token: str) -> list[tuple[str, bool]]:
        seen = (await intake.get(f"/v1/referrals/{view['id']}", headers=auth(token))).json()
        assert seen["withdrawn_reason"] == "moved_away"  # the reason itself is no free text
        return [
            (entry["note"], entry["note_withheld"])
            for entry in seen["timeline"]
            if entry["note"] or entry["note_withheld"]
        ]

    decline_note = ("Already seen by our team under another name", False)
    withdrawal_note = ("moved_away: Family moving to Leeds on Friday", False)
    assert await notes(tokens.practitioner()) == [decline_note, withdrawal_note]
    assert await notes(agency) == [decline_note, ("", True)]
    assert await notes(tokens.admin()) == [("", True), ("", True)]


async def test_an_agency_working_with_the_child_still_reads_the_details_after_a_withdrawal(
    intake: httpx.AsyncClient, tokens: Tokens
) -> None:
    view = await routed(intake, tokens)
    agency = tokens.agency("la-inclusion-service")
    for step in ("accept", "start"):
        assert (await move(intake, agency, view["id"], "autism-outreach", step)).status_code == 200
    withdrawn = await intake.post(
        f"/v1/referrals/{view['id']}/withdraw",
        json={"reason": "moved_away"},
        headers=auth(tokens.practitioner()),
    )
    assert withdrawn.status_code == 200, withdrawn.text
    assert withdrawn.json()["offers"][0]["status"] == "withdrawn"
    path = f"/v1/referrals/{view['id']}/child"
    after = await intake.get(path, params={"purpose": "contact_family"}, headers=auth(agency))
    assert after.status_code == 200, after.text


async def test_no_agency_reads_the_details_once_the_family_withdrew_its_consent(
    intake: httpx.AsyncClient, tokens: Tokens
) -> None:
    view = await routed(intake, tokens)  # shared on the basis of consent
    agency = tokens.agency("la-inclusion-service")
    for step in ("accept", "start"):
        assert (await move(intake, agency, view["id"], "autism-outreach", step)).status_code == 200
    withdrawn = await intake.post(
        f"/v1/referrals/{view['id']}/withdraw",
        json={"reason": "family_withdrew_consent", "note": "phoned the school"},
        headers=auth(tokens.practitioner()),
    )
    assert withdrawn.status_code == 200, withdrawn.text
    path = f"/v1/referrals/{view['id']}/child"
    after = await intake.get(path, params={"purpose": "contact_family"}, headers=auth(agency))
    assert after.status_code == 403, after.text
    assert (
        after.json()["detail"] == "the family withdrew the consent its details were shared with agencies on"
    )
    own = await intake.get(path, params={"purpose": "correction"}, headers=auth(tokens.practitioner()))
    assert own.status_code == 200


async def test_a_confidential_address_is_withheld_from_agencies(
    intake: httpx.AsyncClient, tokens: Tokens
) -> None:
    view = await routed(intake, tokens, referral(child={**referral()["child"], "confidential_address": True}))
    path = f"/v1/referrals/{view['id']}/child"
    agency = await intake.get(
        path, params={"purpose": "contact_family"}, headers=auth(tokens.agency("la-inclusion-service"))
    )
    assert agency.status_code == 200, agency.text
    assert agency.json()["address"] is None and agency.json()["family_name"] == "Quillfeather"
    assert "Marigoldwhistle" not in agency.text
    own = await intake.get(path, params={"purpose": "correction"}, headers=auth(tokens.practitioner()))
    assert own.json()["address"]["line1"] == "17 Marigoldwhistle Lane"


async def test_an_audit_window_that_ends_before_it_starts_is_422(
    intake: httpx.AsyncClient, tokens: Tokens
) -> None:
    window = {"since": "2026-03-02T00:00:00Z", "until": "2026-03-01T00:00:00Z"}
    refused = await intake.get("/v1/audit", params=window, headers=auth(tokens.admin()))
    assert refused.status_code == 422
    assert refused.json() == {
        "detail": [
            {
                "field": "query.since",
                "message": "2026-03-02T00:00:00+00:00 is after `until` (2026-03-01T00:00:00+00:00)",
            }
        ]
    }


async def test_routing_offers_only_sectors_the_family_agreed_to_share_with(
    intake: httpx.AsyncClient, tokens: Tokens
) -> None:
    education_only = {
        "family_agrees_to_early_help": True,
        "lawful_basis": "consent",
        "sharing_scope": ["education"],
    }
    view = await routed(intake, tokens, referral(need_codes=["SLCN"], consent=education_only))
    # Speech and language therapy (health) would fit best, but the family did not agree to share with health.
    assert [o["provision_id"] for o in view["offers"]] == ["autism-outreach"]
    assert any("outside what the family agreed to share with" in n for n in view["offers"][0]["not_chosen"])


async def test_practitioners_list_their_own_referrals_in_pages(
    intake: httpx.AsyncClient, tokens: Tokens
) -> None:
    mine = tokens.practitioner("school-paging")
    ids = [
        (await intake.post("/v1/referrals", json=referral(), headers=auth(mine))).json()["id"]
        for _ in range(5)
    ]
    first = (await intake.get("/v1/referrals", params={"limit": 3}, headers=auth(mine))).json()
    second = (
        await intake.get(
            "/v1/referrals", params={"limit": 3, "cursor": first["next_cursor"]}, headers=auth(mine)
        )
    ).json()
    assert [r["id"] for r in first["items"] + second["items"]] == list(reversed(ids))
    assert second["next_cursor"] is None
    others = (await intake.get("/v1/referrals", headers=auth(tokens.practitioner("school-elsewhere")))).json()
    assert not set(ids) & {r["id"] for r in others["items"]}


async def test_requests_without_a_valid_token_are_refused(intake: httpx.AsyncClient) -> None:
    assert (await intake.post("/v1/referrals", json=referral())).status_code == 401
    bad = await intake.post("/v1/referrals", json=referral(), headers=auth("not.a.token"))
    assert bad.status_code == 401 and bad.headers["www-authenticate"].startswith("Bearer")


async def test_writes_beyond_the_rate_limit_get_429_with_retry_after(
    kafka: KafkaServer, mongodb: MongoServer, dev_key_file: Path
) -> None:
    settings = settings_for(kafka, mongodb, auth_dev_key_file=dev_key_file, rate_limit_writes_per_minute=2)
    tokens = Tokens(settings)
    # The limit sits in front of the handlers: requests straight to the app, no consumers needed.
    transport = httpx.ASGITransport(app=create_intake(settings))
    async with httpx.AsyncClient(transport=transport, base_url="http://signpost.test") as client:
        statuses = [(await submit(client, tokens)).status_code for _ in range(3)]
        assert statuses == [201, 201, 429]
        refused = await submit(client, tokens)
        assert int(refused.headers["retry-after"]) >= 1 and "too many writes" in refused.json()["detail"]
        other = await client.post(
            "/v1/referrals", json=referral(), headers=auth(tokens.practitioner("school-elsewhere"))
        )
        assert other.status_code == 201  # limits are per caller


async def test_an_agencys_inbox_by_status_follows_every_change_of_its_offers(
    intake: httpx.AsyncClient, tokens: Tokens
) -> None:
    """The inbox by status reads each referral's offer keys, so every write of the offers writes
    them: routing's decision and its answer to a decline, each agency's move, a withdrawal."""
    view = await routed(intake, tokens, referral(need_codes=["SEMH", "SPLD"]))
    health, education = tokens.agency("mhst-schools"), tokens.agency("la-inclusion-service")
    runtime: Runtime = intake._transport.app.state.runtime  # type: ignore[attr-defined]

    async def inbox(token: str, status: str) -> set[str]:
        found = await intake.get("/v1/offers", params={"status": status, "limit": 100}, headers=auth(token))
        return {o["provision_id"] for o in found.json()["items"] if o["referral_id"] == view["id"]}

    async def keys_follow_offers() -> bool:
        stored = await runtime.db[REFERRALS].find_one({"_id": view["id"]})
        assert stored is not None
        answered = not any(offer.get(AWAITING_ROUTING) for offer in stored["offers"])
        return answered and stored["offer_keys"] == offer_keys(stored["offers"])

    assert await inbox(health, "routed") == {"early-mental-health"}
    assert await inbox(education, "routed") == {"specialist-teaching"}
    await move(intake, education, view["id"], "specialist-teaching", "decline", {"reason": "not_eligible"})
    assert await inbox(education, "declined") == {"specialist-teaching"}
    assert await inbox(education, "routed") == set()
    await eventually(keys_follow_offers, what="routing's answer to the decline written with its keys")
    for action, status in (("accept", "accepted"), ("start", "in_progress")):
        await move(intake, health, view["id"], "early-mental-health", action)
        assert await inbox(health, status) == {"early-mental-health"}
        assert await inbox(health, "routed") == set()
    withdrawn = await intake.post(
        f"/v1/referrals/{view['id']}/withdraw",
        json={"reason": "needs_met"},
        headers=auth(tokens.practitioner()),
    )
    assert withdrawn.status_code == 200, withdrawn.text
    assert await inbox(health, "withdrawn") == {"early-mental-health"}
    assert await inbox(health, "in_progress") == set()
    assert await keys_follow_offers()
