"""Every topic every service really consumes, against each kind of message that is not an event.

For each (service, topic) the real app consumes, and each kind of bad message, the bad message
is published ahead of a good event on the same partition (same key) to the running app on the
real broker and database. The bad one must reach the dead-letter topic, once, from that service,
with a reason naming what is wrong; the good one after it must take effect; and the consumer
group must commit past both, so consumption goes on.

What the apps consume (their app.py, `Runtime.consume_events`, analytics' own consumer), groups
named `{prefix}signpost-{tenant}-{service}` (`Topics.group`, `Topics.retry_group`):

- intake: group signpost-{tenant}-intake on the referrals topic (batches);
  signpost-{tenant}-intake-retry on signpost.retry.intake (one at a time);
- routing: group signpost-{tenant}-routing on the referrals topic (batches);
  signpost-{tenant}-routing-retry on signpost.retry.routing;
- analytics: group signpost-{tenant}-analytics on the referrals, provisions and settings-register
  topics (its own batch consumer; no retry topic: a fold that fails is dead-lettered at once).

The kinds: malformed bytes; a body over `event_max_bytes`; one over the 1 MiB a service's producer
sends (dead-lettered cut short); an unsupported version of a known type; an unknown type; a body
failing the type's schema; a header without a value (a null `ce_type`); a null body (tombstone);
and on a retry topic, a record without its retry headers. Older tests keep the kinds not here:
missing or invalid CloudEvents headers (test_consumer_failures, test_pulse).

Each service is started once (a class each), on topics and databases of its own.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import httpx
import pytest
import pytest_asyncio
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from fastapi import FastAPI
from pymongo import AsyncMongoClient
from signpost.analytics.app import create_app as create_analytics
from signpost.analytics.projections.facts import fact_id
from signpost.analytics.projections.sets import read_pointer
from signpost.intake.app import create_app as create_intake
from signpost.routing.app import create_app as create_routing
from signpost.shared.events import (
    Envelope,
    EventData,
    Offer,
    ProvisionChangedV1,
    ReferralRoutedV1,
    SettingChangedV1,
    new_event,
    to_kafka_headers,
    to_kafka_value,
)
from signpost.shared.kafka import CUT_BODY_BYTES
from signpost.shared.mongo import Database, Document
from signpost.shared.offsets import StreamInspector, stream_inspector
from signpost.shared.settings import ServiceName, Settings
from signpost.shared.topics import Topics
from signpost.shared.vocabulary import NeedCode, Sector

from tests.conftest import Tokens, eventually, serving, settings_for
from tests.factories import referral
from tests.integration.records import Record, headers_of
from tests.servers import KafkaServer, MongoServer
from tests.unit.shared.test_events import submitted

pytestmark = pytest.mark.asyncio(loop_scope="module")

# Small, so an oversized event is cheap to send, yet above anything the services publish
# themselves (routing's decisions carry explanations), which they read back from the same topics.
EVENT_MAX_BYTES = 32 * 1024
# Short: a parked event is never held longer than the longest of them after it was parked.
RETRY_DELAYS_S = (0.5, 1.0)

TopicRole = Literal["referrals", "provisions", "settings-register", "retry"]
Kind = Literal[
    "malformed",
    "oversized",
    "too-large-for-kafka",
    "wrong-version",
    "unknown-type",
    "schema",
    "null-header",
    "null-body",
    "retry-headers",
]
KINDS: tuple[Kind, ...] = (
    "malformed",
    "oversized",
    "too-large-for-kafka",
    "wrong-version",
    "unknown-type",
    "schema",
    "null-header",
    "null-body",
)
# Over the 1 MiB a service's producer sends at most: the embedded broker takes it from a producer
# that allows more, but the service cannot dead-letter it whole.
TOO_LARGE_FOR_KAFKA = 1_500_000

CONSUMED: dict[ServiceName, tuple[TopicRole, ...]] = {
    "intake": ("referrals", "retry"),
    "routing": ("referrals", "retry"),
    "analytics": ("referrals", "provisions", "settings-register"),
}


def cases(service: ServiceName) -> list[tuple[TopicRole, Kind]]:
    """Every kind on every topic `service` consumes; its retry topic also gets a parked record
    without the retry headers."""
    return [
        (role, kind)
        for role in CONSUMED[service]
        for kind in ((*KINDS, "retry-headers") if role == "retry" else KINDS)
    ]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Each service's class runs the cases of the topics that service consumes."""
    if metafunc.cls is not None and "kind" in metafunc.fixturenames:
        found = cases(metafunc.cls.service)
        metafunc.parametrize(("role", "kind"), found, ids=[f"{role}-{kind}" for role, kind in found])


def topic_of(topics: Topics, service: ServiceName, role: TopicRole) -> str:
    if role == "retry":
        return topics.retry(service)
    return {
        "referrals": topics.referrals,
        "provisions": topics.provisions,
        "settings-register": topics.settings_register,
    }[role]


def group_of(topics: Topics, service: ServiceName, role: TopicRole) -> str:
    return topics.retry_group(service) if role == "retry" else topics.group(service)


@dataclass
class Running:
    """One service app, running for all its class's cases, and what the test reads it with."""

    service: ServiceName
    settings: Settings
    topics: Topics
    client: httpx.AsyncClient
    producer: AIOKafkaProducer
    inspector: StreamInspector
    db: Database
    letters: list[Record] = field(default_factory=list)

    async def send(
        self, topic: str, key: str, value: bytes | None, headers: Mapping[str, str | None]
    ) -> tuple[int, int]:
        """(partition, offset) of the record sent; a header of None goes as a null value."""
        sent = await self.producer.send_and_wait(
            topic,
            value,
            key=key.encode(),
            headers=[(name, None if text is None else text.encode()) for name, text in headers.items()],
        )
        return sent.partition, sent.offset


async def collect(settings: Settings, into: list[Record]) -> None:
    """Every dead letter of this deployment, as it arrives."""
    topic = Topics.from_settings(settings).dead_letters
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign([TopicPartition(topic, 0)])  # the dead-letter topic has one partition
        await consumer.seek_to_beginning()
        while True:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                into.extend(records)
    finally:
        await consumer.stop()


def create(service: ServiceName, settings: Settings) -> FastAPI:
    factory = {"intake": create_intake, "routing": create_routing, "analytics": create_analytics}[service]
    return factory(settings)


@pytest_asyncio.fixture(scope="class", loop_scope="module")
async def running(
    request: pytest.FixtureRequest, kafka: KafkaServer, mongodb: MongoServer, dev_key_file: Path
) -> AsyncIterator[Running]:
    service: ServiceName = request.cls.service
    settings = settings_for(
        kafka,
        mongodb,
        auth_dev_key_file=dev_key_file,
        event_max_bytes=EVENT_MAX_BYTES,
        retry_delays_s=RETRY_DELAYS_S,
    )
    mongo: AsyncMongoClient[Document] = AsyncMongoClient(settings.mongodb_url, tz_aware=True)
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, max_request_size=4 * 2**20)
    async with serving(create(service, settings)) as client, stream_inspector(settings) as inspector:
        await producer.start()
        running = Running(
            service=service,
            settings=settings,
            topics=Topics.from_settings(settings),
            client=client,
            producer=producer,
            inspector=inspector,
            db=mongo[settings.database_name(service)],
        )
        collector = asyncio.create_task(collect(settings, running.letters))
        try:
            yield running
        finally:
            collector.cancel()
            await asyncio.gather(collector, return_exceptions=True)
            await producer.stop()
            await mongo.close()


# --- the good event of each (service, topic), and how to see that it took effect ---------------


@dataclass(frozen=True)
class Good:
    envelope: Envelope[EventData]
    took_effect: Callable[[], Awaitable[object]]


def auth(settings: Settings) -> dict[str, str]:
    return {"Authorization": f"Bearer {Tokens(settings).practitioner()}"}


async def intake_good(app: Running) -> Good:
    """Routing's decision on a referral intake holds: the referral shows it, status and timeline."""
    created = await app.client.post("/v1/referrals", json=referral(), headers=auth(app.settings))
    assert created.status_code == 201, created.text
    referral_id = created.json()["id"]
    offer = Offer(
        provision_id="p-speech",
        provision_name="Speech and language drop-in",
        organisation="Bristol Community Health",
        organisation_id="org-bch",
        sector=Sector.HEALTH,
        needs_met=[NeedCode.SLCN],
        explanation="Meets speech, language and communication needs.",
    )
    decision: EventData = ReferralRoutedV1(
        referral_id=referral_id, offers=[offer], routed_at=datetime.now(UTC)
    )
    envelope = new_event(decision, source="/signpost/routing", tenant=app.settings.tenant)

    async def routed() -> bool:
        view = (await app.client.get(f"/v1/referrals/{referral_id}", headers=auth(app.settings))).json()
        return view["status"] == "routed" and ReferralRoutedV1.event_type in [
            entry["type"] for entry in view["timeline"]
        ]

    return Good(envelope, routed)


def referral_submitted(app: Running) -> Envelope[EventData]:
    referral_id = f"r-{uuid.uuid4().hex[:12]}"
    return new_event(submitted(referral_id), source="/signpost/intake", tenant=app.settings.tenant)


async def routing_good(app: Running) -> Good:
    """A submission: routing stores its decision."""
    envelope = referral_submitted(app)

    async def decided() -> bool:
        return await app.db["decisions"].find_one({"_id": envelope.subject}) is not None

    return Good(envelope, decided)


def analytics_stored(
    app: Running, kind: Literal["facts", "provisions", "settings_register"], key: str
) -> Callable[[], Awaitable[object]]:
    async def stored() -> bool:
        target = (await read_pointer(app.db)).active
        return await app.db[getattr(target, kind)].find_one({"_id": key}) is not None

    return stored


async def analytics_good(app: Running, role: TopicRole) -> Good:
    """The event's fact, provision or setting in the active projection set."""
    tenant, now = app.settings.tenant, datetime.now(UTC)
    if role == "referrals":
        envelope = referral_submitted(app)
        return Good(envelope, analytics_stored(app, "facts", fact_id(tenant, envelope.subject)))
    if role == "provisions":
        provision_id = f"p-{uuid.uuid4().hex[:12]}"
        changed: EventData = ProvisionChangedV1(
            provision_id=provision_id,
            change="created",
            provision={"name": "Speech and language drop-in", "sector": "health"},
            changed_at=now,
        )
        envelope = new_event(changed, source="/signpost/routing", tenant=tenant)
        return Good(envelope, analytics_stored(app, "provisions", f"{tenant}|{provision_id}"))
    setting_id = f"URN{uuid.uuid4().int % 10**9}"
    changed = SettingChangedV1(
        setting_id=setting_id,
        change="registered",
        name="Ashley Primary School",
        locality="Ashley",
        phase="primary",
        changed_at=now,
    )
    envelope = new_event(changed, source="/signpost/analytics", tenant=tenant)
    return Good(envelope, analytics_stored(app, "settings_register", f"{tenant}|{setting_id}"))


async def good_event(app: Running, role: TopicRole) -> Good:
    if app.service == "intake":
        return await intake_good(app)
    if app.service == "routing":
        return await routing_good(app)
    return await analytics_good(app, role)


# --- the bad messages -------------------------------------------------------------------------


def parked(service: str, topics: Topics) -> dict[str, str]:
    """What a service adds to an event it parks on its retry topic, due now."""
    now = datetime.now(UTC).isoformat()
    return {
        "retry_service": service,
        "retry_topic": topics.referrals,
        "retry_partition": "0",
        "retry_offset": "0",
        "retry_attempts": "1",
        "retry_first_failed_at": now,
        "retry_error": "RuntimeError: parked by the test",
        "retry_not_before": now,
    }


def bad_message(
    good: Envelope[EventData], role: TopicRole, kind: Kind
) -> tuple[dict[str, str | None], bytes, str]:
    """(headers, body, what the reason must say): a message of the good event's own type,
    spoilt the way `kind` says."""
    headers: dict[str, str | None] = {**to_kafka_headers(good)}
    body = to_kafka_value(good)
    family = good.type.rpartition(".")[0]
    data = json.loads(body)
    if kind == "malformed":
        return headers, b"\x00\xff<referral>not json", "body: malformed JSON"
    if kind in ("oversized", "too-large-for-kafka"):
        size = EVENT_MAX_BYTES if kind == "oversized" else TOO_LARGE_FOR_KAFKA
        padded = json.dumps({**data, "padding": "x" * size}).encode()
        return headers, padded, f"bytes, over the {EVENT_MAX_BYTES}-byte limit"
    if kind == "wrong-version":
        return {**headers, "ce_type": f"{family}.v9"}, body, f"unsupported version 'v9' of '{family}'"
    if kind == "unknown-type":
        unknown = "uk.signpost.referral.teleported.v1"
        return {**headers, "ce_type": unknown}, body, f"unknown event type '{unknown}'"
    if kind == "schema":
        if role in ("referrals", "retry") and "offers" in data:
            return headers, json.dumps({**data, "offers": []}).encode(), "body: offers: "
        if role in ("referrals", "retry"):
            return headers, json.dumps({**data, "age_years": 99}).encode(), "body: age_years: "
        return headers, json.dumps({**data, "change": "exploded"}).encode(), "body: change: "
    if kind == "null-header":  # Kafka allows a header without a value: read as no header at all
        return {**headers, "ce_type": None}, body, "header ce_type is missing"
    if kind == "null-body":  # a tombstone, on a compacted topic as much as any other
        return headers, b"", "body: empty"
    assert kind == "retry-headers"
    return headers, body, "retry headers: retry header retry_topic is missing"


# --- the test ---------------------------------------------------------------------------------


class DeadLetters:
    """The cases of one service, against one app started for them all."""

    service: ServiceName

    async def test_a_bad_message_is_dead_lettered_with_its_reason_and_the_next_event_handled(
        self, running: Running, role: TopicRole, kind: Kind
    ) -> None:
        await bad_then_good(running, role, kind)


class ParksRetries(DeadLetters):
    """A service with a retry topic of its own."""

    async def test_a_parked_event_due_far_ahead_is_retried_after_the_longest_delay_holding_nothing_up(
        self, running: Running
    ) -> None:
        app = running
        topic = app.topics.retry(app.service)
        far, after = await good_event(app, "retry"), await good_event(app, "retry")
        key = far.envelope.subject  # both on one partition, the far one first
        far_ahead = {**parked(app.service, app.topics), "retry_not_before": "9999-12-31T00:00:00+00:00"}
        await app.send(
            topic, key, to_kafka_value(far.envelope), {**to_kafka_headers(far.envelope), **far_ahead}
        )
        due = {**to_kafka_headers(after.envelope), **parked(app.service, app.topics)}
        partition, offset = await app.send(topic, key, to_kafka_value(after.envelope), due)

        await eventually(after.took_effect, what="the event parked after it handled")
        await eventually(far.took_effect, what="the event due far ahead handled after the longest delay")
        where = TopicPartition(topic, partition)

        async def committed_past_both() -> bool:
            return (await app.inspector.committed(app.topics.retry_group(app.service), [where])).get(
                where, -1
            ) > offset

        await eventually(committed_past_both, what=f"committed past offset {offset} of {topic}")
        assert not [letter for letter in app.letters if letter.key == key.encode()]


class TestIntake(ParksRetries):
    service = "intake"


class TestRouting(ParksRetries):
    service = "routing"


class TestAnalytics(DeadLetters):
    service = "analytics"


async def bad_then_good(app: Running, role: TopicRole, kind: Kind) -> None:
    topic = topic_of(app.topics, app.service, role)
    good = await good_event(app, role)
    headers, body, reason = bad_message(good.envelope, role, kind)
    good_headers = to_kafka_headers(good.envelope)
    if role == "retry":
        retry = parked(app.service, app.topics)
        good_headers = {**good_headers, **retry}
        if kind != "retry-headers":
            headers = {**headers, **retry}
    key = good.envelope.subject  # one key: the bad message is ahead of the good one on its partition
    partition, bad_offset = await app.send(topic, key, body or None, headers)  # b"": a null value
    good_partition, good_offset = await app.send(topic, key, to_kafka_value(good.envelope), good_headers)
    assert good_partition == partition

    # (2) the good event after it is handled
    await eventually(good.took_effect, what=f"{app.service} handled the event after the {kind} message")

    # (1) the bad one is dead-lettered by this service, with a reason naming what is wrong
    def letters() -> list[Record]:
        return [
            letter
            for letter in app.letters
            if letter.key == key.encode() and headers_of(letter)["dlq_service"] == app.service
        ]

    async def lettered() -> list[Record]:
        return letters()

    (letter, *more) = await eventually(lettered, what=f"the {kind} message dead-lettered")
    dlq = headers_of(letter)
    assert reason in dlq["dlq_error"], (reason, dlq["dlq_error"])
    assert dlq["dlq_kind"] == "not-an-event" and dlq["dlq_attempts"] == "0"
    if kind == "too-large-for-kafka":  # what it could: the reason, the headers, the body's start
        assert letter.value == body[:CUT_BODY_BYTES]
        assert (
            f"too large to dead-letter whole: body cut to its first {CUT_BODY_BYTES} of {len(body)} bytes"
            in dlq["dlq_error"]
        )
    else:
        assert letter.value == body
    sent = {
        name: value for name, value in headers.items() if not name.startswith("retry_") and value is not None
    }
    assert sent.items() <= dlq.items()  # what the producer sent, untouched
    assert not [name for name in dlq if name.startswith("retry_")]
    # Where it was first read: a parked event keeps the place it was parked from.
    origin = (
        (topic, partition, bad_offset)
        if role != "retry" or kind == "retry-headers"
        else (
            app.topics.referrals,
            0,
            0,
        )
    )
    assert (dlq["dlq_topic"], int(dlq["dlq_partition"]), int(dlq["dlq_offset"])) == origin

    # (3) the consumer goes on: its group commits past both, and the bad one was dead-lettered once
    group = group_of(app.topics, app.service, role)
    where = TopicPartition(topic, partition)

    async def committed_past_both() -> bool:
        return (await app.inspector.committed(group, [where])).get(where, -1) > good_offset

    await eventually(committed_past_both, what=f"{group} committed past offset {good_offset} of {topic}")
    assert not more and len(letters()) == 1, [headers_of(extra) for extra in letters()]
