"""The event contract: a CloudEvents 1.0 envelope and the versioned event types.

On Kafka an event travels in CloudEvents binary mode: attributes as `ce_*` headers,
the JSON `data` as the body, the referral id (or the area and provision or setting id) as the key. Events carry no direct
identifier of a child; identifying details stay in intake's database.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, ClassVar, Generic, Literal, TypeVar

import uuid6
from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, ValidationError
from signpost.shared.lifecycle import ReferralStatus
from signpost.shared.vocabulary import (
    NEEDS_SCORE_MAX,
    NEEDS_SCORE_MIN,
    BroadArea,
    DeclineReason,
    EscalationReason,
    FamilyNeed,
    LevelOfNeed,
    NeedCode,
    NeedsDomain,
    Outcome,
    Sector,
    Urgency,
    WithdrawReason,
)

NeedsScore = Annotated[int, Field(ge=NEEDS_SCORE_MIN, le=NEEDS_SCORE_MAX)]
NeedsProfile = dict[NeedsDomain, NeedsScore]

TYPE_PREFIX = "uk.signpost."

# An event's times are moments something happened, so each carries its offset (a time without one
# cannot be compared with the stored ones) and lies between the Unix epoch, where event ids and
# Kafka timestamps begin, and a day past the reader's clock (producers' clocks drift; days ahead is
# no moment at all, and would hold a last-writer-wins register entry or overflow analytics'
# durations). Refused events are dead-lettered with the field named.
EARLIEST_EVENT_TIME = datetime(1970, 1, 1, tzinfo=UTC)
CLOCK_SKEW_ALLOWED = timedelta(days=1)


def _a_moment_that_happened(value: datetime) -> datetime:
    if value < EARLIEST_EVENT_TIME:
        raise ValueError(f"{value.isoformat()} is before 1970-01-01, when event times begin")
    if value > datetime.now(UTC) + CLOCK_SKEW_ALLOWED:
        raise ValueError(f"{value.isoformat()} is more than a day ahead of this reader's clock")
    return value


EventTime = Annotated[AwareDatetime, AfterValidator(_a_moment_that_happened)]
CONTENT_TYPE: Literal["application/json"] = "application/json"


class EventData(BaseModel):
    """Base of every event's `data`. Readers ignore fields they do not know (additive evolution)."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    event_type: ClassVar[str]
    # The field naming what the event is about: the envelope's subject (and Kafka key) must equal it,
    # as readers follow one or the other (intake the subject, routing and analytics the field).
    subject_field: ClassVar[str] = "referral_id"
    # On a compacted topic, which keeps the latest record of each key: see `kafka_key`.
    compacted: ClassVar[bool] = False

    def about(self) -> str:
        return str(getattr(self, self.subject_field))


class ReferralSubmittedV1(EventData):
    event_type: ClassVar[str] = "uk.signpost.referral.submitted.v1"

    referral_id: str
    age_years: int = Field(ge=0, le=25)
    locality: str
    setting_id: str
    need_codes: list[NeedCode] = Field(min_length=1)
    broad_areas: list[BroadArea]
    level_of_need: LevelOfNeed
    submitted_at: EventTime
    child_ref: str = Field(
        default="",
        description="Pseudonymous: a keyed hash, the same for every referral of one child in one area.",
    )
    family_needs: list[FamilyNeed] = []
    needs_profile: NeedsProfile = {}
    urgency: Urgency = Urgency.ROUTINE
    sharing_scope: list[Sector] = Field(default_factory=lambda: list(Sector))
    graduated_approach_cycles: int = Field(default=0, ge=0)
    graduated_approach_worked: bool | None = None
    safeguarding_concern: bool = False


class Offer(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    provision_id: str
    provision_name: str
    organisation: str
    organisation_id: str
    sector: Sector
    needs_met: list[NeedCode]
    explanation: str = Field(description="Why this provision was chosen, in plain English.")
    score: float = Field(default=0.0, ge=0, le=1)
    not_chosen: list[str] = Field(default=[], description="Close alternatives and why they were not chosen.")


class ReferralRoutedV1(EventData):
    event_type: ClassVar[str] = "uk.signpost.referral.routed.v1"

    referral_id: str
    offers: list[Offer] = Field(min_length=1)
    routed_at: EventTime
    replaces_provision_id: str | None = Field(
        default=None, description="Set when these offers re-route a declined one: they join the package."
    )
    unmet_needs: list[NeedCode] = Field(
        default=[],
        description="Needs no provision was found for, named for commissioners: of the child's on a first "
        "decision, of the declined offer's on a re-route. Events from before this field name none.",
    )


class ReferralUnmatchedV1(EventData):
    event_type: ClassVar[str] = "uk.signpost.referral.unmatched.v1"

    referral_id: str
    unmet_needs: list[NeedCode]
    locality: str
    reason: str
    decided_at: EventTime
    declined_provision_id: str | None = Field(
        default=None, description="Set when no other provision could take over a declined offer."
    )


class ReferralEscalatedV1(EventData):
    event_type: ClassVar[str] = "uk.signpost.referral.escalated.v1"

    referral_id: str
    reason: EscalationReason
    locality: str
    setting_id: str
    escalated_at: EventTime


class ReferralWithdrawnV1(EventData):
    event_type: ClassVar[str] = "uk.signpost.referral.withdrawn.v1"

    referral_id: str
    reason: WithdrawReason
    withdrawn_at: EventTime
    withdrawn_from: ReferralStatus | None = Field(
        default=None,
        description="The status intake held the referral in when it was withdrawn: `submitted` means "
        "intake applied no routing decision, so a decision published before the withdrawal but read "
        "after it offered nothing. Events from before this field name none (not known).",
    )


class ReferralInformationAddedV1(EventData):
    """That the referrer added information; its text stays in intake (it may identify the child)."""

    event_type: ClassVar[str] = "uk.signpost.referral.information_added.v1"

    referral_id: str
    needs_profile: NeedsProfile | None = None
    added_at: EventTime


class OfferEvent(EventData):
    """An agency's move on one offer of a referral's package."""

    referral_id: str
    provision_id: str
    organisation_id: str
    at: EventTime


class OfferAcceptedV1(OfferEvent):
    event_type: ClassVar[str] = "uk.signpost.referral.offer_accepted.v1"


class OfferDeclinedV1(OfferEvent):
    event_type: ClassVar[str] = "uk.signpost.referral.offer_declined.v1"

    reason: DeclineReason


class OfferStartedV1(OfferEvent):
    event_type: ClassVar[str] = "uk.signpost.referral.offer_started.v1"


class OfferCompletedV1(OfferEvent):
    event_type: ClassVar[str] = "uk.signpost.referral.offer_completed.v1"

    outcome: Outcome
    needs_profile_after: NeedsProfile


class ProvisionChangedV1(EventData):
    """A Local Offer provision was created, updated or retired; keyed by provision id (compacted)."""

    event_type: ClassVar[str] = "uk.signpost.provision.changed.v1"
    subject_field: ClassVar[str] = "provision_id"
    compacted: ClassVar[bool] = True

    provision_id: str
    change: Literal["created", "updated", "retired"]
    # Untyped here: routing's `Provision` lives in routing, and a model here would refuse events the
    # compacted topic keeps that predate one of its fields. The contract (`signpost contract`)
    # documents it with routing's model; readers pick out the fields they use.
    provision: dict[str, Any] = Field(
        description="The provision as routing holds it after the change: routing's `Provision`, "
        "as GET /v1/provisions/{id} answers."
    )
    changed_at: EventTime


class SettingChangedV1(EventData):
    """An early-years setting, school or college joined, changed in or left the area's register.

    Keyed by setting id on the compacted settings-register topic: the latest state of each
    is the register analytics measures coverage against (the share of settings referring).
    """

    event_type: ClassVar[str] = "uk.signpost.setting.changed.v1"
    subject_field: ClassVar[str] = "setting_id"
    compacted: ClassVar[bool] = True

    setting_id: str
    change: Literal["registered", "updated", "closed"]
    name: str
    locality: str
    phase: str = Field(default="", description="e.g. early years, primary, secondary, post-16, special.")
    changed_at: EventTime


# Every event of one referral's lifecycle: what travels on the referrals topic, keyed by referral id.
REFERRAL_EVENTS = (
    ReferralSubmittedV1,
    ReferralRoutedV1,
    ReferralUnmatchedV1,
    ReferralEscalatedV1,
    ReferralWithdrawnV1,
    ReferralInformationAddedV1,
    OfferAcceptedV1,
    OfferDeclinedV1,
    OfferStartedV1,
    OfferCompletedV1,
)

EVENT_TYPES: dict[str, type[EventData]] = {
    cls.event_type: cls for cls in (*REFERRAL_EVENTS, ProvisionChangedV1, SettingChangedV1)
}

D = TypeVar("D", bound=EventData)


class Envelope(BaseModel, Generic[D]):
    """CloudEvents 1.0 attributes plus Signpost's extensions (`tenant`, correlation, causation)."""

    model_config = ConfigDict(frozen=True)

    id: str = Field(
        description="The event's id, a UUIDv7 (its text sorts by creation time). The same on every "
        "redelivery: a reader skips an id it has handled."
    )
    source: str = Field(description="The service that produced it: /signpost/<service>[/<part>].")
    type: str = Field(description="The event type, versioned: uk.signpost.<entity>.<event>.v<N>.")
    specversion: Literal["1.0"] = Field(default="1.0", description="The CloudEvents version.")
    time: EventTime = Field(description="When the event was created (RFC 3339, UTC).")
    subject: str = Field(
        description="What the event is about, and its Kafka key: the referral id, provision id or setting id."
    )
    tenant: str = Field(description="The local area, e.g. an ONS local authority code.")
    correlationid: str = Field(
        description="One request's chain: the HTTP request's id (x-correlation-id) on the events it "
        "caused and on routing's decisions about them. A later request about the same referral has "
        "its own; follow a referral by `subject`."
    )
    causationid: str | None = Field(
        default=None,
        description="The id of the event that caused this one (routing's decisions); absent otherwise.",
    )
    datacontenttype: Literal["application/json"] = CONTENT_TYPE
    data: D


def new_event(
    data: D,
    *,
    source: str,
    tenant: str,
    correlation_id: str | None = None,
    causation_id: str | None = None,
) -> Envelope[D]:
    """A fresh envelope about what its data names (`EventData.about`); ids are UUIDv7, so they sort
    by creation time."""
    event_id = str(uuid6.uuid7())
    return Envelope[D](
        id=event_id,
        source=source,
        type=data.event_type,
        time=datetime.now(UTC),
        subject=data.about(),
        tenant=tenant,
        correlationid=correlation_id or event_id,
        causationid=causation_id,
        data=data,
    )


def first_event_id_at(epoch_s: float) -> str:
    """The lowest UUIDv7 text of that millisecond: every event id created before it sorts below."""
    stamp = f"{int(epoch_s * 1000):012x}"
    return f"{stamp[:8]}-{stamp[8:]}-7000-8000-000000000000"


def event_id_at(epoch_s: float) -> str:
    """A unique UUIDv7 text of that millisecond, as if created then (seeded data, backdated events)."""
    return first_event_id_at(epoch_s)[:19] + uuid.uuid4().hex[:4] + "-" + uuid.uuid4().hex[:12]


def event_id_time(event_id: str) -> datetime:
    """When a UUIDv7 event id was created, to the millisecond."""
    return datetime.fromtimestamp(int(event_id.replace("-", "")[:12], 16) / 1000, UTC)


class EventContractError(ValueError):
    """A message that is not a valid Signpost event; `reason` says what is wrong and where."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# The attributes that travel as `ce_<name>` headers (CloudEvents' Kafka binary mode).
HEADER_ATTRIBUTES = (
    "id",
    "source",
    "type",
    "specversion",
    "time",
    "subject",
    "tenant",
    "correlationid",
    "causationid",
)


def to_kafka_headers(envelope: Envelope[EventData]) -> dict[str, str]:
    attributes = envelope.model_dump(mode="json", include=set(HEADER_ATTRIBUTES))
    headers = {f"ce_{name}": str(value) for name, value in attributes.items() if value is not None}
    headers["content-type"] = envelope.datacontenttype
    return headers


def header_texts(headers: Iterable[tuple[str, bytes | None]]) -> dict[str, str]:
    """A Kafka record's headers as text. Kafka allows a header without a value: it reads as no
    header at all, so a null `ce_type` is a missing one (and dead-lettered as such)."""
    return {name: value.decode("utf-8", "replace") for name, value in headers if value is not None}


def kafka_key(envelope: Envelope[EventData]) -> str:
    """The record's key. A referral's events share its id, so they keep their order on one
    partition. A compacted topic keeps only the latest record of each key, and the areas of a region
    may share a stream, so a provision's or setting's key names its area too: `<tenant>|<id>`."""
    return f"{envelope.tenant}|{envelope.subject}" if envelope.data.compacted else envelope.subject


def to_kafka_value(envelope: Envelope[EventData]) -> bytes:
    return envelope.data.model_dump_json().encode()


# Binary-mode attributes a producer must send; `causationid` is optional.
REQUIRED_HEADERS = tuple(f"ce_{name}" for name in HEADER_ATTRIBUTES if name != "causationid")


def from_kafka(
    value: bytes | None, headers: Mapping[str, str], *, max_bytes: int | None = None
) -> Envelope[EventData]:
    """Read a binary-mode CloudEvent; raises EventContractError naming the bad part.

    Each way a message can fail to be an event has its own reason, so a dead letter
    says at a glance what is wrong: missing header, wrong specversion, unknown type,
    unsupported version of a known type, oversized, empty, malformed JSON, wrong shape.
    """
    event_type = headers.get("ce_type")
    if event_type is None:
        raise EventContractError("header ce_type is missing: not a CloudEvent in binary mode")
    specversion = headers.get("ce_specversion")
    if specversion is not None and specversion != "1.0":
        raise EventContractError(
            f"header ce_specversion: {specversion[:20]!r} is not supported, expected CloudEvents '1.0'"
        )
    data_class = EVENT_TYPES.get(event_type)
    if data_class is None:
        raise EventContractError(_unknown_type(event_type))
    missing = [name for name in REQUIRED_HEADERS if name not in headers]
    if missing:
        raise EventContractError(f"header {', '.join(missing)} missing: required CloudEvents attributes")
    if not value:
        raise EventContractError("body: empty, expected the event's JSON data")
    if max_bytes is not None and len(value) > max_bytes:
        raise EventContractError(f"body: {len(value)} bytes, over the {max_bytes}-byte limit for one event")
    try:
        data = data_class.model_validate_json(value)
    except ValidationError as exc:
        if exc.errors()[0]["type"] == "json_invalid":
            raise EventContractError(f"body: malformed JSON: {exc.errors()[0]['msg']}") from None
        raise EventContractError(f"body: {_first_error(exc)}") from None
    attributes = {name: headers[f"ce_{name}"] for name in HEADER_ATTRIBUTES if f"ce_{name}" in headers}
    try:
        envelope = Envelope[EventData](**attributes, data=data)
    except ValidationError as exc:
        raise EventContractError(f"header ce_{_first_error(exc)}") from None
    if envelope.subject != data.about():
        raise EventContractError(
            f"header ce_subject: {envelope.subject[:100]!r} is not the body's "
            f"{data.subject_field} {data.about()[:100]!r}: an event is about one thing"
        )
    return envelope


def _unknown_type(event_type: str) -> str:
    """Tell a version this consumer does not read apart from a type it has never heard of."""
    family, _, version = event_type[:200].rpartition(".")
    known = sorted(
        known_version
        for known_family, _, known_version in (name.rpartition(".") for name in EVENT_TYPES)
        if known_family == family
    )
    if known:
        return (
            f"header ce_type: unsupported version {version!r} of {family!r} "
            f"(this consumer reads {', '.join(known)})"
        )
    return f"header ce_type: unknown event type {event_type[:200]!r}"


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    location = ".".join(str(part) for part in error["loc"]) or "(root)"
    return f"{location}: {error['msg']}"
