"""The partners' event contract in docs/contract: what `signpost contract` generates from the models,
and true to the events, keys and headers Signpost sends."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from signpost.intake.subscriptions import dispatcher
from signpost.intake.subscriptions.models import DELIVERED_EVENT_TYPES
from signpost.routing.catalogue.seed import STARTER_CATALOGUE
from signpost.shared.events import (
    EVENT_TYPES,
    Envelope,
    EventData,
    ProvisionChangedV1,
    SettingChangedV1,
    new_event,
    to_kafka_headers,
    to_kafka_value,
)
from signpost.shared.vocabulary import (
    DeclineReason,
    EscalationReason,
    NeedCode,
    NeedsDomain,
    Outcome,
    Sector,
    WithdrawReason,
)

from signpost.platform.cli import main
from signpost.platform.contract import ASYNCAPI_FILE, REGENERATE, contract, schema_file
from signpost.platform.lifecycles import ReferralEvents, offer

PUBLISHED = Path(__file__).resolve().parents[3] / "docs" / "contract"
AT = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)


def test_the_published_contract_is_what_the_models_generate(tmp_path: Path) -> None:
    assert main(["contract", "--out", str(tmp_path)]) == 0
    generated = {path.name: path.read_text() for path in tmp_path.iterdir()}
    published = {path.name: path.read_text() for path in PUBLISHED.iterdir()}
    assert sorted(published) == sorted(generated), (
        f"files differ: run `{REGENERATE}` and commit docs/contract"
    )
    differ = sorted(name for name in generated if generated[name] != published[name])
    assert not differ, f"docs/contract is not what the models generate ({differ}): run `{REGENERATE}`"


def test_regenerating_removes_the_schema_of_a_type_that_is_gone(tmp_path: Path) -> None:
    (tmp_path / schema_file("uk.signpost.referral.teleported.v1")).write_text("{}")
    assert main(["contract", "--out", str(tmp_path)]) == 0
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(contract())


def samples() -> list[Envelope[EventData]]:
    """An event of every type, as intake, routing and analytics make them."""
    referral = ReferralEvents("r-1", tenant="E06000023", source="/signpost/intake")
    autism = offer(
        "autism-outreach", sector=Sector.EDUCATION, needs_met=[NeedCode.ASD], organisation_id="la-inclusion"
    )
    profile = {NeedsDomain.COMMUNICATION_AND_INTERACTION: 3}
    return [
        referral.submitted(
            at=AT, needs=[NeedCode.ASD], locality="Ashley", setting_id="URN1", needs_profile=profile
        ),
        referral.information_added(at=AT, needs_profile=profile),
        referral.escalated(at=AT, reason=EscalationReason.SAFEGUARDING, locality="Ashley", setting_id="URN1"),
        referral.unmatched(at=AT, unmet_needs=[NeedCode.HI], locality="Ashley"),
        referral.routed(at=AT, offers=[autism]),
        referral.accepted(autism, at=AT),
        referral.declined(autism, at=AT, reason=DeclineReason.NO_CAPACITY),
        referral.started(autism, at=AT),
        referral.completed(autism, at=AT, outcome=Outcome.NEEDS_MET, needs_profile_after=profile),
        referral.withdrawn(at=AT, reason=WithdrawReason.MOVED_AWAY),
        *(
            area_event(
                ProvisionChangedV1(
                    provision_id=provision.id,
                    change="updated",
                    provision=provision.model_dump(mode="json"),  # as routing's catalogue sends it
                    changed_at=AT,
                ),
                source="/signpost/routing/catalogue",
                subject=provision.id,
            )
            for provision in STARTER_CATALOGUE
        ),
        area_event(
            SettingChangedV1(
                setting_id="URN1",
                change="registered",
                name="Ashley Primary",
                locality="Ashley",
                changed_at=AT,
            ),
            source="/signpost/analytics",
            subject="URN1",
        ),
    ]


def area_event(data: EventData, *, source: str, subject: str) -> Envelope[EventData]:
    return new_event(data, source=source, tenant="E06000023")


def test_every_event_type_has_a_sample() -> None:
    assert {event.type for event in samples()} == set(EVENT_TYPES)


@pytest.mark.parametrize("event", samples(), ids=lambda event: event.type)
def test_each_event_is_valid_against_its_published_schema(event: Envelope[EventData]) -> None:
    schema = json.loads((PUBLISHED / schema_file(event.type)).read_text())
    validator(schema).validate(json.loads(to_kafka_value(event)))


def test_a_provision_events_provision_has_routings_shape_in_the_schema() -> None:
    schema = json.loads((PUBLISHED / schema_file(ProvisionChangedV1.event_type)).read_text())
    event = json.loads(to_kafka_value(samples()[-2]))
    with pytest.raises(jsonschema.ValidationError, match="'astrology' is not one of"):
        validator(schema).validate({**event, "provision": {**event["provision"], "sector": "astrology"}})
    # Readers ignore fields they do not know, and the schema says so: no additionalProperties: false.
    validator(schema).validate({**event, "provision": {**event["provision"], "added_later": 1}})


def test_the_asyncapi_document_puts_each_event_on_its_topic_keyed_by_its_subject() -> None:
    document = asyncapi()
    on_topics = {
        channel["address"]: sorted(
            resolve(document, ref["$ref"])["name"] for ref in channel["messages"].values()
        )
        for channel in document["channels"].values()
        if channel["address"]
    }
    assert on_topics == {
        "signpost.referrals": sorted(t for t in EVENT_TYPES if ".referral." in t),
        "signpost.provisions": [ProvisionChangedV1.event_type],
        "signpost.settings-register": [SettingChangedV1.event_type],
    }
    webhook = document["channels"]["webhooks"]["messages"].values()
    assert {resolve(document, ref["$ref"])["name"] for ref in webhook} == DELIVERED_EVENT_TYPES
    for message in document["components"]["messages"].values():
        assert (PUBLISHED / message["payload"]["$ref"]).is_file()
    for operation in document["operations"].values():
        for ref in (operation["channel"], *operation["messages"]):
            resolve(document, ref["$ref"])


@pytest.mark.parametrize("event", samples(), ids=lambda event: event.type)
def test_kafka_headers_are_as_the_asyncapi_document_says(event: Envelope[EventData]) -> None:
    document = asyncapi()
    message = next(m for m in document["components"]["messages"].values() if m["name"] == event.type)
    # As on the broker: FastStream adds correlation_id, equal to ce_correlationid.
    headers = {**to_kafka_headers(event), "correlation_id": event.correlationid}
    validator(headers_schema(document, message)).validate(headers)
    validator(message["bindings"]["kafka"]["key"]).validate(event.subject)
    assert set(headers) <= set(headers_schema(document, message)["allOf"][0]["properties"])


@pytest.mark.parametrize(
    "event", [e for e in samples() if e.type in DELIVERED_EVENT_TYPES], ids=lambda event: event.type
)
def test_webhook_headers_are_as_the_asyncapi_document_says(event: Envelope[EventData]) -> None:
    document = asyncapi()
    message = document["components"]["messages"][f"{type(event.data).__name__}Delivery"]
    delivery = {"_id": "d-1", "headers": to_kafka_headers(event), "body": to_kafka_value(event)}
    headers = dispatcher._headers(delivery, {"secret": "s" * 32})  # what the dispatcher POSTs
    validator(headers_schema(document, message)).validate(headers)
    assert set(headers) <= set(headers_schema(document, message)["allOf"][0]["properties"])


def asyncapi() -> dict[str, Any]:
    return dict(json.loads((PUBLISHED / ASYNCAPI_FILE).read_text()))


def headers_schema(document: dict[str, Any], message: dict[str, Any]) -> dict[str, Any]:
    """The message's headers schema, its reference to the common headers resolved."""
    headers = message["headers"]
    return {**headers, "allOf": [resolve(document, part["$ref"]) for part in headers["allOf"]]}


def resolve(document: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    found: Any = document
    for part in ref[2:].split("/"):
        found = found[part]
    return found


def validator(schema: dict[str, Any]) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
