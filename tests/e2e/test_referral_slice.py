"""One referral end to end: intake → Kafka → routing → Kafka → intake and analytics, on real servers."""

from __future__ import annotations

from contextlib import AsyncExitStack
from typing import Any

import httpx
from aiokafka import AIOKafkaProducer
from pymongo import AsyncMongoClient
from signpost.analytics.app import create_app as create_analytics
from signpost.intake.app import create_app as create_intake
from signpost.routing.app import create_app as create_routing
from signpost.shared.events import (
    Envelope,
    EventData,
    ReferralSubmittedV1,
    new_event,
    to_kafka_headers,
    to_kafka_value,
)
from signpost.shared.outbox import OUTBOX
from signpost.shared.settings import Settings
from signpost.shared.topics import Topics
from signpost.shared.vocabulary import LevelOfNeed, NeedCode, broad_areas

from tests.conftest import Tokens, eventually, serving
from tests.factories import referral

REFERRAL = referral()


class Platform:
    def __init__(
        self,
        tokens: Tokens,
        intake: httpx.AsyncClient,
        routing: httpx.AsyncClient,
        analytics: httpx.AsyncClient,
    ) -> None:
        self.intake, self.routing, self.analytics = intake, routing, analytics
        self.practitioner = {"Authorization": f"Bearer {tokens.practitioner()}"}
        self.admin = {"Authorization": f"Bearer {tokens.admin()}"}  # sees small numbers unsuppressed

    async def submit(self, body: dict[str, Any]) -> str:
        response = await self.intake.post("/v1/referrals", json=body, headers=self.practitioner)
        assert response.status_code == 201, response.text
        assert response.headers["location"] == f"/v1/referrals/{response.json()['id']}"
        return str(response.json()["id"])

    async def decided(self, referral_id: str) -> dict[str, Any] | None:
        found = (await self.intake.get(f"/v1/referrals/{referral_id}", headers=self.practitioner)).json()
        return found if found["status"] != "submitted" else None

    async def pulse(self) -> dict[str, Any]:
        return dict((await self.analytics.get("/v1/pulse", headers=self.admin)).json())


async def start_platform(stack: AsyncExitStack, settings: Settings) -> Platform:
    clients = [
        await stack.enter_async_context(serving(factory(settings)))
        for factory in (create_intake, create_routing, create_analytics)
    ]
    return Platform(Tokens(settings), *clients)


# Analytics is ready once its index of the projections is loaded.
PROJECTIONS = {"projections": "ok"}


async def test_referrals_are_routed_and_counted(settings: Settings) -> None:
    async with AsyncExitStack() as stack:
        platform = await start_platform(stack, settings)
        for service, own in (
            (platform.intake, {}),
            (platform.routing, {}),
            (platform.analytics, PROJECTIONS),
        ):

            async def ready(service: httpx.AsyncClient = service) -> dict[str, object] | None:
                answer = await service.get("/readyz")
                return answer.json() if answer.status_code == 200 else None

            assert await eventually(ready, what="ready") == {
                "status": "ready",
                "checks": {"kafka": "ok", "mongodb": "ok", **own},
            }

        routed_id = await platform.submit(REFERRAL)
        unmatched_id = await platform.submit(
            referral(need_codes=["PMLD"], child={**REFERRAL["child"], "date_of_birth": "2023-01-01"})
        )

        routed = await eventually(lambda: platform.decided(routed_id), what="routed status")
        assert routed["status"] == "routed"
        assert [offer["provision_id"] for offer in routed["offers"]] == ["autism-outreach"]
        assert routed["offers"][0]["explanation"]
        unmatched = await eventually(lambda: platform.decided(unmatched_id), what="unmatched status")
        assert unmatched["status"] == "unmatched" and unmatched["unmet_needs"] == ["PMLD"]

        decision = (await platform.routing.get(f"/v1/decisions/{routed_id}", headers=platform.admin)).json()
        assert decision["type"] == "uk.signpost.referral.routed.v1"

        async def both_counted() -> dict[str, Any] | None:
            pulse = await platform.pulse()
            return pulse if pulse["by_outcome"]["routed"] + pulse["by_outcome"]["unmatched"] == 2 else None

        pulse = await eventually(both_counted, what="pulse counts")
        assert pulse == {
            "tenant": settings.tenant,
            "submitted": 2,
            "by_need_code": {"ASD": 1, "PMLD": 1, "SLCN": 1},
            "by_outcome": {
                "routed": 1,
                "unmatched": 1,
                "escalated_safeguarding": 0,
                "escalated_ehc_assessment": 0,
                "awaiting_decision": 0,
            },
            "suppressed": {},
        }


async def test_duplicate_deliveries_change_nothing(settings: Settings) -> None:
    topics = Topics.from_settings(settings)
    async with AsyncExitStack() as stack:
        platform = await start_platform(stack, settings)
        referral_id = await platform.submit(REFERRAL)
        before = await eventually(lambda: platform.decided(referral_id), what="routed status")
        await eventually(
            lambda: _if(platform.pulse(), lambda p: p["by_outcome"]["routed"] == 1), what="first count"
        )

        # Publish the very same submitted and routed events again, as a redelivery would.
        mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongodb_url)
        stack.push_async_callback(mongo.close)
        staged = [
            *await mongo[settings.database_name("intake")][OUTBOX].find().to_list(),
            *await mongo[settings.database_name("routing")][OUTBOX].find().to_list(),
        ]
        assert len(staged) == 2
        producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
        await producer.start()
        stack.push_async_callback(producer.stop)
        partitions = set()
        for doc in staged:
            for _ in range(2):
                record = await producer.send_and_wait(
                    topics.referrals,
                    doc["value"],
                    key=doc["key"].encode(),
                    headers=[(k, v.encode()) for k, v in doc["headers"].items()],
                )
                partitions.add(record.partition)
        # A sentinel behind the duplicates on the same partition: once it is counted,
        # every consumer has read past them.
        (partition,) = partitions
        sentinel: Envelope[EventData] = new_event(
            ReferralSubmittedV1(
                referral_id="sentinel",
                age_years=9,
                locality="Ashley",
                setting_id="URN100002",
                need_codes=[NeedCode.VI],
                broad_areas=broad_areas([NeedCode.VI]),
                level_of_need=LevelOfNeed.EARLY_HELP,
                submitted_at=before["submitted_at"],
            ),
            source="/tests",
            tenant=settings.tenant,
        )
        await producer.send_and_wait(
            topics.referrals,
            to_kafka_value(sentinel),
            key=b"sentinel",
            partition=partition,
            headers=[(k, v.encode()) for k, v in to_kafka_headers(sentinel).items()],
        )
        await eventually(
            lambda: _if(
                platform.routing.get("/v1/decisions/sentinel", headers=platform.admin),
                lambda r: r.status_code == 200,
            ),
            what="sentinel routed",
        )
        pulse = await eventually(
            lambda: _if(platform.pulse(), lambda p: p["by_outcome"]["routed"] == 2), what="sentinel counted"
        )
        assert pulse["submitted"] == 2
        assert pulse["by_need_code"] == {"ASD": 1, "SLCN": 1, "VI": 1}
        after = (
            await platform.intake.get(f"/v1/referrals/{referral_id}", headers=platform.practitioner)
        ).json()
        assert after == before
        decisions = await mongo[settings.database_name("routing")]["decisions"].count_documents({})
        assert decisions == 2


async def _if(awaitable: Any, accept: Any) -> Any:
    value = await awaitable
    return value if accept(value) else None
