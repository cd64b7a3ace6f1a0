"""Reconciliation on real servers: which referrals it picks, that replicas share the work, and that
a referral whose submitted event the broker lost is decided and counted exactly once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
from signpost.analytics.app import create_app as create_analytics
from signpost.intake.app import INDEXES
from signpost.intake.app import create_app as create_intake
from signpost.intake.reconciliation.service import count_stuck, find_due, reconcile_once
from signpost.intake.referrals.models import REFERRALS
from signpost.routing.app import create_app as create_routing
from signpost.shared.outbox import OUTBOX, PENDING, pending_count
from signpost.shared.service import Runtime
from signpost.shared.settings import Settings
from structlog.testing import capture_logs

from tests.commands import watched
from tests.conftest import Tokens, eventually, serving, settings_for
from tests.factories import referral
from tests.plans import scanned
from tests.servers import MongoServer, RestartableKafka

AFTER_S = 300.0
NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


def _referral(name: str, *, age_s: float, status: str = "submitted", **fields: Any) -> dict[str, Any]:
    return {
        "_id": name,
        "tenant": "E06000023",
        "status": status,
        "submitted_at": NOW - timedelta(seconds=age_s),
        "submitted_event_id": f"event-{name}",
        **fields,
    }


SELECTION_CASES = [
    (_referral("old-undecided", age_s=AFTER_S + 1), True),
    (_referral("exactly-due", age_s=AFTER_S), True),
    (_referral("young-undecided", age_s=AFTER_S - 1), False),
    (_referral("routed", age_s=AFTER_S * 10, status="routed"), False),
    (_referral("unmatched", age_s=AFTER_S * 10, status="unmatched"), False),
    (_referral("safeguarding", age_s=AFTER_S * 10, status="escalated", safeguarding_concern=True), False),
    (_referral("withdrawn", age_s=AFTER_S * 10, status="withdrawn"), False),
    (_referral("backing-off", age_s=AFTER_S * 10, next_reconcile_at=NOW + timedelta(seconds=5)), False),
    (_referral("backoff-over", age_s=AFTER_S * 10, next_reconcile_at=NOW), True),
    (_referral("given-up", age_s=AFTER_S * 10, reconciliations=10, reconciliation_given_up_at=NOW), False),
    (_referral("other-area", age_s=AFTER_S * 10, tenant="E06000022"), False),
]


@pytest.fixture
async def replicas(settings: Settings) -> AsyncIterator[list[Runtime]]:
    """Two intake runtimes on one database, as two replicas would be (no broker needed: nothing starts)."""
    tuned = settings.model_copy(update={"reconcile_after_s": AFTER_S, "tenant": "E06000023"})
    runtimes = [Runtime.build(tuned, "intake") for _ in range(2)]
    for runtime in runtimes:
        runtime.enable_outbox()
    yield runtimes
    for runtime in runtimes:
        await runtime.client.close()


async def test_only_undecided_referrals_past_the_age_are_selected(replicas: list[Runtime]) -> None:
    db = replicas[0].db
    await db[REFERRALS].insert_many([doc for doc, _ in SELECTION_CASES])

    due = await find_due(runtime=replicas[0], now=NOW)

    expected = sorted(doc["_id"] for doc, is_due in SELECTION_CASES if is_due)
    assert sorted(doc["_id"] for doc in due) == expected


async def test_a_round_reads_only_the_undecided_referrals_from_an_index(replicas: list[Runtime]) -> None:
    """Years of decided referrals beside a few undecided ones: every query a round sends (the due
    referrals, the claims, the give-up, the stuck count) reads those few alone. A filter with
    anything beside the index's fields made SecantusDB read every referral, holding every other
    command meanwhile, every round."""
    built = replicas[0]
    runtime = replace(built, settings=built.settings.model_copy(update={"reconcile_max_attempts": 2}))
    decided = [_referral(f"decided-{n}", age_s=AFTER_S * 10 + n, status="routed") for n in range(200)]
    undecided = [
        _referral("old-undecided", age_s=AFTER_S + 1),
        _referral("last-attempt", age_s=AFTER_S * 10, reconciliations=2),
        _referral("given-up", age_s=AFTER_S * 10, reconciliations=2, reconciliation_given_up_at=NOW),
    ]
    await INDEXES.apply(runtime.db)
    await runtime.db[REFERRALS].insert_many([*decided, *undecided, _referral("young", age_s=1)])
    await runtime.db[OUTBOX].insert_one(
        {"_id": "event-old-undecided", "topic": "t", "key": "old-undecided", "headers": {}, "value": b"{}",
         "created_at": NOW}
    )  # fmt: skip
    async with watched(runtime) as (watching, sent):
        assert await reconcile_once(runtime=watching, now=NOW) == 2  # one claimed, one given up
        assert await count_stuck(runtime=watching, now=NOW) == 2

    finds = sent.named("find", REFERRALS)
    assert len(finds) == 2
    for find in finds:
        scans, stats = await scanned(runtime.db[REFERRALS].find(find["filter"]).sort(find["sort"]))
        assert scans == [{"tenant": 1, "status": 1, "submitted_at": -1}]
        assert stats["totalDocsExamined"] == len(undecided)
    # SecantusDB's explain does not model a lookup by `_id` beside other fields; its server finds
    # the document by id when `_id` comes first and no `$` operator stands at the top level.
    updates = [u["q"] for update in sent.named("update", REFERRALS) for u in update["updates"]]
    assert len(updates) == 2
    for query in updates:
        assert next(iter(query)) == "_id" and not any(key.startswith("$") for key in query), query


async def test_replicas_republish_each_due_referral_once_with_its_same_event(replicas: list[Runtime]) -> None:
    db = replicas[0].db
    await db[REFERRALS].insert_many([doc for doc, _ in SELECTION_CASES])
    published = NOW - timedelta(days=1)
    await db[OUTBOX].insert_many(  # published: not among the pending ids
        [
            {"_id": doc["submitted_event_id"], "topic": "t", "key": doc["_id"], "headers": {}, "value": b"{}",
             "created_at": published}
            for doc, _ in SELECTION_CASES
        ]
    )  # fmt: skip

    claimed = await asyncio.gather(*(reconcile_once(runtime=r, now=NOW) for r in replicas))

    due = sorted(doc["_id"] for doc, is_due in SELECTION_CASES if is_due)
    assert sum(claimed) == len(due)
    before = {doc["_id"]: doc.get("reconciliations", 0) for doc, _ in SELECTION_CASES}
    counts = {
        doc["_id"]: doc.get("reconciliations", 0) - before[doc["_id"]]
        for doc in await db[REFERRALS].find().to_list()
    }
    assert {name for name, count in counts.items() if count} == set(due)
    assert all(count <= 1 for count in counts.values())
    requeued = await db[OUTBOX].find({"_id": {"$in": await db[PENDING].distinct("_id")}}).to_list()
    assert sorted(doc["key"] for doc in requeued) == due  # the same events, by id, go out again
    # Just re-published: not due again in the next round.
    assert await reconcile_once(runtime=replicas[0], now=NOW + timedelta(milliseconds=500)) == 0


async def test_republication_backs_off_and_gives_up_once_after_the_last_attempt(
    replicas: list[Runtime],
) -> None:
    """An event nobody decides (say dead-lettered) is re-published after 300 s, 600 s, then the
    1,000 s cap; when the last attempt's wait runs out it is given up on, logged once at ERROR,
    counted stuck, and never re-published again."""
    runtime = replicas[0]
    runtime.settings = runtime.settings.model_copy(
        update={"reconcile_max_attempts": 3, "reconcile_max_backoff_s": 1000}
    )
    db = runtime.db
    await db[REFERRALS].insert_one(_referral("dead-lettered", age_s=AFTER_S))
    await db[OUTBOX].insert_one(
        {"_id": "event-dead-lettered", "topic": "t", "key": "dead-lettered", "headers": {}, "value": b"{}",
         "created_at": NOW}
    )  # fmt: skip

    async def rounds(*offsets_s: float) -> list[int]:
        return [await reconcile_once(runtime=runtime, now=NOW + timedelta(seconds=s)) for s in offsets_s]

    assert await rounds(0, 299, 300, 899, 900, 1899) == [1, 0, 1, 0, 1, 0]
    assert (await db[REFERRALS].find_one({"_id": "dead-lettered"}))["reconciliations"] == 3  # type: ignore[index]
    with capture_logs() as logs:
        assert await rounds(1900, 1900, 10 * 86400) == [1, 0, 0]
    assert [(entry["log_level"], entry["referral_id"], entry["attempts"]) for entry in logs] == [
        ("error", "dead-lettered", 3)
    ]
    assert (await db[REFERRALS].find_one({"_id": "dead-lettered"}))["reconciliations"] == 3  # type: ignore[index]
    assert await count_stuck(runtime=runtime) == 1
    await db[REFERRALS].update_one({"_id": "dead-lettered"}, {"$set": {"status": "routed"}})
    assert await count_stuck(runtime=runtime) == 0  # decided at last (a replayed dead letter): not stuck


async def test_stuck_referrals_are_counted_in_metrics(settings: Settings) -> None:
    tuned = settings.model_copy(
        update={"reconcile_after_s": 1.0, "reconcile_interval_s": 0.2, "reconcile_max_attempts": 1}
    )
    async with serving(create_intake(tuned)) as intake:
        runtime: Runtime = intake._transport.app.state.runtime  # type: ignore[attr-defined]
        submitted_at = datetime.now(UTC) - timedelta(hours=1)
        await runtime.db[REFERRALS].insert_many(
            [
                {"_id": name, "tenant": tuned.tenant, "status": "submitted", "submitted_at": submitted_at,
                 "submitted_event_id": f"event-{name}", "reconciliations": 1}
                for name in ["stuck-1", "stuck-2"]
            ]
        )  # fmt: skip

        async def stuck_gauge() -> bool:
            text = (await intake.get("/metrics")).text
            return "signpost_reconciliation_stuck_referrals 2.0" in text

        await eventually(stuck_gauge, what="both referrals counted stuck")


async def test_referrals_whose_events_the_broker_lost_are_decided_and_counted_once(
    restartable_kafka: RestartableKafka, mongodb: MongoServer, dev_key_file: Path
) -> None:
    settings = settings_for(
        restartable_kafka.as_server(),
        mongodb,
        auth_dev_key_file=dev_key_file,
        reconcile_after_s=1.0,
        reconcile_interval_s=0.5,
    )
    practitioner = {"Authorization": f"Bearer {Tokens(settings).practitioner()}"}
    admin = f"Bearer {Tokens(settings).admin()}"

    async with AsyncExitStack() as stack:
        intake = await stack.enter_async_context(serving(create_intake(settings)))
        routing = await stack.enter_async_context(serving(create_routing(settings)))
        analytics = await stack.enter_async_context(serving(create_analytics(settings)))
        analytics.headers["Authorization"] = admin  # exact counts: the pulse suppresses under 5 below admin
        decided_before = await _submit(intake, practitioner)
        await eventually(lambda: _status(intake, practitioner, decided_before), what="first referral routed")
        await eventually(lambda: _submitted_count(analytics, 1), what="first referral counted")
    # Routing and analytics are down; these two are published but nobody reads them yet...
    async with serving(create_intake(settings)) as intake:
        lost = [await _submit(intake, practitioner) for _ in range(2)]
        await eventually(lambda: _outbox_drained(intake), what="published to the broker")
    # ...and then the broker restarts and forgets them.
    await restartable_kafka.restart()

    async with AsyncExitStack() as stack:
        intake = await stack.enter_async_context(serving(create_intake(settings)))
        routing = await stack.enter_async_context(serving(create_routing(settings)))
        analytics = await stack.enter_async_context(serving(create_analytics(settings)))
        analytics.headers["Authorization"] = admin  # exact counts: the pulse suppresses under 5 below admin
        for referral_id in lost:
            found = await eventually(
                partial(_status, intake, practitioner, referral_id),
                timeout_s=60,
                what="lost referral decided after reconciliation",
            )
            assert found["status"] == "routed"
            decision = await routing.get(f"/v1/decisions/{referral_id}", headers={"Authorization": admin})
            assert decision.status_code == 200
        await eventually(lambda: _submitted_count(analytics, 3), what="every referral counted")
        await asyncio.sleep(2 * settings.reconcile_interval_s)  # a further round changes nothing
        assert await _submitted_count(analytics, 3)
        pulse = (await analytics.get("/v1/pulse")).json()
        assert pulse["by_outcome"]["routed"] == 3
        runtime: Runtime = routing._transport.app.state.runtime  # type: ignore[attr-defined]
        assert await runtime.db["decisions"].count_documents({}) == 3
        intake_runtime: Runtime = intake._transport.app.state.runtime  # type: ignore[attr-defined]
        reconciled = await intake_runtime.db[REFERRALS].find({}, {"reconciliations": 1}).to_list()
        assert {doc["_id"]: doc.get("reconciliations", 0) > 0 for doc in reconciled} == {
            decided_before: False,
            **dict.fromkeys(lost, True),
        }


async def _submit(intake: httpx.AsyncClient, headers: dict[str, str]) -> str:
    response = await intake.post("/v1/referrals", json=referral(), headers=headers)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def _status(
    intake: httpx.AsyncClient, headers: dict[str, str], referral_id: str
) -> dict[str, Any] | None:
    found = (await intake.get(f"/v1/referrals/{referral_id}", headers=headers)).json()
    return dict(found) if found["status"] != "submitted" else None


async def _submitted_count(analytics: httpx.AsyncClient, expected: int) -> bool:
    return bool((await analytics.get("/v1/pulse")).json()["submitted"] == expected)


async def _outbox_drained(intake: httpx.AsyncClient) -> bool:
    runtime: Runtime = intake._transport.app.state.runtime  # type: ignore[attr-defined]
    return await pending_count(runtime.db) == 0
