"""No direct identifier of a child reaches Kafka or a log line, whatever happens to the referral.

Drives the whole platform (`signpost run`, debug logging) through its public API with
referrals full of distinctive identifiers, then reads every byte of every topic and
every line every process wrote.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import TopicPartition

from tests.e2e.running import RunningPlatform, request, running_platform, wait_for
from tests.factories import CHILD, REFERRAL, referral

IDENTIFIERS = [
    CHILD["given_name"],
    CHILD["family_name"],
    "Marigoldwhistle",
    "9434765919",
    "943 476 5919",
    CHILD["upn"],
    "BS4 1QX",
    "BS41QX",
    "bs4 1qx",
    CHILD["date_of_birth"],
    REFERRAL["referrer"]["name"],
]


def test_no_identifier_in_any_topic_or_log_line(tmp_path: Path) -> None:
    with running_platform(tmp_path, log_level="DEBUG") as platform:
        practitioner = platform.demo_token("practitioner", "school-ashley-primary")
        inclusion = platform.demo_token("agency", "la-inclusion-service")
        ids = [
            # A case system's own reference as the correlation id must not reach events or logs.
            submit(platform, practitioner, referral(), x_correlation_id="NHS-9434765919"),
            submit(platform, practitioner, referral(safeguarding_concern=True)),
            submit(platform, practitioner, referral(need_codes=["SPLD"])),
        ]
        for referral_id in (ids[0], ids[2]):
            wait_for(
                lambda r=referral_id: status(platform, practitioner, r) == "routed",
                timeout_s=30,
                what="routed",
            )
        intake = platform.url("intake", "")
        assert (
            request(f"{intake}/v1/referrals/{ids[0]}/child?purpose=correction", token=practitioner)[0] == 200
        )
        assert (
            request(
                f"{intake}/v1/referrals/{ids[0]}/information",
                {"text": f"{CHILD['given_name']} {CHILD['family_name']} moved to Marigoldwhistle Lane"},
                practitioner,
            )[0]
            == 200
        )
        offer = f"{intake}/v1/referrals/{ids[0]}/offers/autism-outreach"
        for action in ("accept", "start"):
            assert request(f"{offer}/{action}", {"note": f"met {CHILD['given_name']}"}, inclusion)[0] == 200
        completion = {
            "outcome": "needs_met",
            "needs_profile_after": {"communication_and_interaction": 1},
            "note": CHILD["upn"],
        }
        assert request(f"{offer}/complete", completion, inclusion)[0] == 200
        declined = {"reason": "other", "note": f"{CHILD['family_name']} family prefer another service"}
        assert (
            request(
                f"{intake}/v1/referrals/{ids[2]}/offers/specialist-teaching/decline", declined, inclusion
            )[0]
            == 200
        )
        wait_for(lambda: pulse_submitted(platform) == 3, timeout_s=30, what="all counted")

        records = asyncio.run(every_record(f"127.0.0.1:{platform.ports['kafka']}"))
        logs = platform.lines()

    values = [where for where, _ in records if where.endswith("value")]
    assert len(values) >= 10  # 3 submitted, escalated, 2 routed, information, 4 offer moves
    leaks = [
        (identifier, where)
        for identifier in IDENTIFIERS
        for where, data in records
        if identifier.encode() in data
    ]
    assert leaks == [], f"identifiers on Kafka: {leaks[:5]}"
    assert "referral accepted" in logs and "referral routed" in logs  # the services did log
    leaked_lines = [
        line for line in logs.splitlines() if any(identifier in line for identifier in IDENTIFIERS)
    ]
    assert leaked_lines == [], f"identifiers in logs: {leaked_lines[:5]}"


def submit(platform: RunningPlatform, token: str, body: dict[str, object], **headers: str) -> str:
    code, answer = request(platform.url("intake", "/v1/referrals"), body, token, **headers)
    assert code == 201, answer
    return str(answer["id"])


def status(platform: RunningPlatform, token: str, referral_id: str) -> str:
    return str(request(platform.url("intake", f"/v1/referrals/{referral_id}"), token=token)[1]["status"])


def pulse_submitted(platform: RunningPlatform) -> int:
    admin = platform.demo_token("admin", "la-digital")  # sees small numbers unsuppressed
    return int(request(platform.url("analytics", "/v1/pulse"), token=admin)[1]["submitted"])


async def every_record(bootstrap: str) -> list[tuple[str, bytes]]:
    """(where, bytes) for the key, value and each header of every record on every topic."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        topics = [t for t in await admin.list_topics() if not t.startswith("__")]
    finally:
        await admin.close()
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    found: list[tuple[str, bytes]] = []
    try:
        await consumer.topics()  # loads metadata for every topic
        partitions = [TopicPartition(t, p) for t in topics for p in consumer.partitions_for_topic(t) or []]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
            batches = await consumer.getmany(timeout_ms=1000)
            for tp, batch in batches.items():
                for record in batch:
                    where = f"{tp.topic}[{tp.partition}]@{record.offset}"
                    found.append((f"{where} value", record.value or b""))
                    found.append((f"{where} key", record.key or b""))
                    found.extend((f"{where} header {name}", value) for name, value in record.headers)
    finally:
        await consumer.stop()
    return found
