import time
from datetime import UTC, datetime

import pytest
from signpost.analytics.projections import facts
from signpost.shared.events import (
    EVENT_TYPES,
    REFERRAL_EVENTS,
    Envelope,
    EventContractError,
    EventData,
    ProvisionChangedV1,
    ReferralSubmittedV1,
    ReferralWithdrawnV1,
    first_event_id_at,
    from_kafka,
    header_texts,
    new_event,
    to_kafka_headers,
    to_kafka_value,
)
from signpost.shared.lifecycle import ReferralStatus
from signpost.shared.outbox import outbox_document
from signpost.shared.vocabulary import BroadArea, LevelOfNeed, NeedCode, WithdrawReason, broad_areas


def submitted(referral_id: str = "r-1") -> ReferralSubmittedV1:
    return ReferralSubmittedV1(
        referral_id=referral_id,
        age_years=8,
        locality="Ashley",
        setting_id="URN100001",
        need_codes=[NeedCode.SLCN, NeedCode.SEMH],
        broad_areas=broad_areas([NeedCode.SLCN, NeedCode.SEMH]),
        level_of_need=LevelOfNeed.EARLY_HELP,
        submitted_at=datetime(2026, 11, 2, 9, 30, tzinfo=UTC),
    )


SUBMITTED_AT = b'"2026-11-02T09:30:00Z"'


def test_binary_mode_round_trip_keeps_every_attribute() -> None:
    event: Envelope[EventData] = new_event(
        submitted(), source="/signpost/intake", tenant="E06000023", correlation_id="c-1"
    )
    headers = to_kafka_headers(event)
    assert headers["ce_type"] == "uk.signpost.referral.submitted.v1"
    assert headers["ce_specversion"] == "1.0"
    assert headers["content-type"] == "application/json"
    assert from_kafka(to_kafka_value(event), headers) == event


def test_event_ids_sort_by_creation_time() -> None:
    ids = [new_event(submitted(), source="s", tenant="t").id for _ in range(50)]
    assert ids == sorted(ids) and len(set(ids)) == 50


def test_readers_ignore_fields_they_do_not_know() -> None:
    event: Envelope[EventData] = new_event(submitted(), source="s", tenant="t")
    value = to_kafka_value(event).replace(b'{"referral_id"', b'{"added_later":1,"referral_id"')
    assert from_kafka(value, to_kafka_headers(event)).data == event.data


def test_a_withdrawal_from_before_withdrawn_from_reads_as_not_known() -> None:
    withdrawn = ReferralWithdrawnV1(
        referral_id="r-1",
        reason=WithdrawReason.OTHER,
        withdrawn_at=datetime(2026, 11, 2, 9, 30, tzinfo=UTC),
        withdrawn_from=ReferralStatus.SUBMITTED,
    )
    event: Envelope[EventData] = new_event(withdrawn, source="s", tenant="t")
    value = to_kafka_value(event)
    assert b'"withdrawn_from":"submitted"' in value
    assert from_kafka(value, to_kafka_headers(event)) == event
    before = value.replace(b',"withdrawn_from":"submitted"', b"")
    assert from_kafka(before, to_kafka_headers(event)).data == withdrawn.model_copy(
        update={"withdrawn_from": None}
    )


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda h, v: ({k: x for k, x in h.items() if k != "ce_type"}, v), "header ce_type is missing"),
        (lambda h, v: ({**h, "ce_type": "uk.signpost.referral.teleported.v1"}, v), "unknown event type"),
        (
            lambda h, v: ({**h, "ce_type": "uk.signpost.referral.submitted.v2"}, v),
            "unsupported version 'v2' of 'uk.signpost.referral.submitted' \\(this consumer reads v1\\)",
        ),
        (lambda h, v: ({**h, "ce_specversion": "0.3"}, v), "header ce_specversion: '0.3' is not supported"),
        (lambda h, v: (h, b"not json"), "body: malformed JSON: "),
        (lambda h, v: (h, b"[1, 2]"), "body: \\(root\\): Input should be an object"),
        (lambda h, v: (h, v.replace(b'"age_years":8', b'"age_years":40')), "body: age_years"),
        # A value a newer release added to an enum: older consumers refuse it (README: Evolution).
        (lambda h, v: (h, v.replace(b'"SEMH"', b'"NEW"')), "body: need_codes.1: Input should be"),
        (lambda h, v: ({k: x for k, x in h.items() if k != "ce_tenant"}, v), "header ce_tenant missing"),
        (lambda h, v: ({**h, "ce_time": "soon"}, v), "header ce_time: Input should be a valid datetime"),
        # Times are moments that happened: with an offset, after the epoch, at most a day ahead.
        (
            lambda h, v: (h, v.replace(SUBMITTED_AT, b'"2026-11-02T09:30:00"')),
            "body: submitted_at: .*timezone",
        ),
        (
            lambda h, v: (h, v.replace(SUBMITTED_AT, b'"9999-12-31T00:00:00Z"')),
            "body: submitted_at: .*9999-12-31T00:00:00\\+00:00 is more than a day ahead of this reader's clock",
        ),
        (
            lambda h, v: (h, v.replace(SUBMITTED_AT, b'"1969-12-31T23:59:59Z"')),
            "body: submitted_at: .*before 1970",
        ),
        (lambda h, v: ({**h, "ce_time": "3000-01-01T00:00:00Z"}, v), "header ce_time: .*a day ahead"),
        (lambda h, v: (h, None), "body: empty"),
        (
            lambda h, v: ({**h, "ce_subject": "r-2"}, v),
            "header ce_subject: 'r-2' is not the body's referral_id 'r-1': an event is about one thing",
        ),
        (lambda h, v: (h, v + b" " * 4096), "body: \\d+ bytes, over the 4096-byte limit"),
    ],
)
def test_bad_messages_say_what_is_wrong_and_where(mutate, expected: str) -> None:  # type: ignore[no-untyped-def]
    event: Envelope[EventData] = new_event(submitted(), source="s", tenant="t")
    headers, value = mutate(to_kafka_headers(event), to_kafka_value(event))
    with pytest.raises(EventContractError, match=expected):
        from_kafka(value, headers, max_bytes=4096)


def test_an_event_at_the_size_limit_is_read() -> None:
    event: Envelope[EventData] = new_event(submitted(), source="s", tenant="t")
    value = to_kafka_value(event)
    assert from_kafka(value, to_kafka_headers(event), max_bytes=len(value)) == event


def test_need_codes_imply_broad_areas_in_code_of_practice_order() -> None:
    assert broad_areas([NeedCode.SEMH, NeedCode.ASD, NeedCode.SLCN, NeedCode.NSA]) == [
        BroadArea.COMMUNICATION_AND_INTERACTION,
        BroadArea.SOCIAL_EMOTIONAL_MENTAL_HEALTH,
    ]


def test_referral_events_are_every_known_type_about_one_referral() -> None:
    """One list: the referral lifecycle is the event types that name a referral, and analytics folds those."""
    about_a_referral = {name for name, cls in EVENT_TYPES.items() if "referral_id" in cls.model_fields}
    assert {cls.event_type for cls in REFERRAL_EVENTS} == about_a_referral
    assert facts.REFERRAL_EVENTS is REFERRAL_EVENTS


def test_event_ids_created_after_a_moment_sort_above_its_first_id() -> None:
    before = first_event_id_at(time.time() - 1)
    event = new_event(submitted(), source="intake", tenant="t")
    after = first_event_id_at(time.time() + 1)
    assert before < event.id < after


def test_a_header_without_a_value_reads_as_no_header() -> None:
    event: Envelope[EventData] = new_event(submitted(), source="s", tenant="t")
    raw = [(name, text.encode()) for name, text in to_kafka_headers(event).items() if name != "ce_type"]
    headers = header_texts([*raw, ("ce_type", None), ("x-note", "caf\xe9".encode("latin-1"))])
    assert "ce_type" not in headers and headers["x-note"] == "caf\ufffd"
    with pytest.raises(EventContractError, match="header ce_type is missing"):
        from_kafka(to_kafka_value(event), headers)


def test_a_compacted_topics_key_names_the_area_as_areas_may_share_the_stream() -> None:
    """Compaction keeps the latest record of each key: keyed by provision id alone, one area's
    record of a provision both areas list (the starter catalogue's) would remove the other's."""
    change = ProvisionChangedV1(
        provision_id="slt-community", change="created", provision={}, changed_at=datetime.now(UTC)
    )
    keys = {
        outbox_document("signpost.provisions", new_event(change, source="s", tenant=tenant))["key"]
        for tenant in ("E06000023", "E06000024")
    }
    assert keys == {"E06000023|slt-community", "E06000024|slt-community"}
    referral = new_event(submitted(), source="s", tenant="E06000023")
    assert outbox_document("signpost.referrals", referral)["key"] == "r-1"  # its events keep one partition
