"""The webhook dispatcher on the real database: several intake replicas share its deliveries,
SIGNPOST_OUTBOUND_LOOPBACK_ONLY holds at each delivery, not only when a subscription is stored, and
a delivery queued before its subscription was stopped is not sent."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from signpost.intake.app import INDEXES
from signpost.intake.app import create_app as create_intake
from signpost.intake.subscriptions.dispatcher import WebhookDispatcher
from signpost.intake.subscriptions.models import DELIVERIES, SUBSCRIPTIONS
from signpost.shared.mongo import Document
from signpost.shared.service import Runtime
from signpost.shared.settings import Settings

from tests.commands import watched
from tests.conftest import Tokens, eventually
from tests.plans import scanned

DELIVERY_IDS = ["d-1", "d-2", "d-3"]


class SlowReceiver:
    """A partner slow to answer: each delivery's first POST gets 204 after 0.5 s; any later POST of
    it gets 500 after 1 s, so a duplicate sent meanwhile would be recorded last."""

    def __init__(self) -> None:
        self.posts: Counter[str] = Counter()
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers["content-length"]))
                with receiver._lock:
                    receiver.posts[self.headers["Signpost-Delivery-Id"]] += 1
                    first = receiver.posts[self.headers["Signpost-Delivery-Id"]] == 1
                time.sleep(0.5 if first else 1.0)
                self.send_response(204 if first else 500)
                self.end_headers()

            def log_message(self, *_: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"


@pytest.fixture
def slow_receiver() -> Iterator[SlowReceiver]:
    receiver = SlowReceiver()
    threading.Thread(target=receiver.server.serve_forever, daemon=True).start()
    try:
        yield receiver
    finally:
        receiver.server.shutdown()


async def _queue(runtime: Runtime, url: str, delivery_ids: list[str]) -> None:
    await runtime.db[SUBSCRIPTIONS].insert_one(
        {"_id": "sub-1", "tenant": runtime.settings.tenant, "organisation": "nhs-1", "url": url,
         "event_types": ["*"], "secret": "s" * 32, "active": True, "created_at": datetime.now(UTC)}
    )  # fmt: skip
    await runtime.db[DELIVERIES].insert_many(
        [_delivery(delivery_id, tenant=runtime.settings.tenant) for delivery_id in delivery_ids]
    )


def _delivery(delivery_id: str, *, tenant: str) -> Document:
    return {
        "_id": delivery_id,
        "subscription_id": "sub-1",
        "organisation": "nhs-1",
        "tenant": tenant,
        "event_id": f"e-{delivery_id}",
        "event_type": "uk.signpost.referral.routed.v1",
        "referral_id": "r-1",
        "headers": {
            "ce_id": f"e-{delivery_id}",
            "ce_type": "uk.signpost.referral.routed.v1",
            "ce_subject": "r-1",
            "ce_specversion": "1.0",
        },
        "body": b"{}",
        "status": "pending",
        "attempts": [],
        "next_attempt_at": datetime.now(UTC),
    }


@pytest.fixture
async def replicas(settings: Settings) -> AsyncIterator[tuple[Runtime, Runtime]]:
    """Two intake replicas on one database."""
    first, second = Runtime.build(settings, "intake"), Runtime.build(settings, "intake")
    yield first, second
    await first.client.close()
    await second.client.close()


async def test_replicas_post_each_delivery_once_per_attempt_and_never_undo_a_delivery(
    replicas: tuple[Runtime, Runtime], slow_receiver: SlowReceiver
) -> None:
    a, b = replicas
    await _queue(a, slow_receiver.url, DELIVERY_IDS)
    async with httpx.AsyncClient(timeout=5) as client:
        # Both look for due deliveries at once, then b looks again while the POSTs are in flight.
        rounds = [asyncio.create_task(WebhookDispatcher(r).deliver_due(client)) for r in (a, b)]

        async def all_in_flight() -> bool:
            return set(slow_receiver.posts) == set(DELIVERY_IDS)

        await eventually(all_in_flight, what="every delivery posted")
        again = await WebhookDispatcher(b).deliver_due(client)
        sent = await asyncio.gather(*rounds)
    await asyncio.sleep(1.5)  # any duplicate POST (500 after 1 s) would have been answered by now

    assert slow_receiver.posts == Counter(dict.fromkeys(DELIVERY_IDS, 1))
    assert (sum(sent), again) == (len(DELIVERY_IDS), 0)
    stored = await a.db[DELIVERIES].find({}).sort("_id").to_list()
    assert [(d["status"], [at["status_code"] for at in d["attempts"]]) for d in stored] == [
        ("delivered", [204])
    ] * len(DELIVERY_IDS)


async def test_loopback_only_refuses_an_older_subscriptions_outside_host_at_delivery(
    settings: Settings,
) -> None:
    runtime = Runtime.build(settings.model_copy(update={"outbound_loopback_only": True}), "intake")
    requests: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return httpx.Response(204)

    try:
        await _queue(runtime, "https://partner.example/hook", ["d-1"])  # stored before the setting
        async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as client:
            assert await WebhookDispatcher(runtime).deliver_due(client) == 1
        (stored,) = await runtime.db[DELIVERIES].find({}).to_list()
    finally:
        await runtime.client.close()

    assert requests == []
    assert stored["status"] == "pending"  # retried like any failure, in case the setting is lifted
    (attempt,) = stored["attempts"]
    assert attempt["status_code"] is None
    assert "SIGNPOST_OUTBOUND_LOOPBACK_ONLY" in attempt["error"]


async def test_a_delivery_queued_before_its_subscription_is_stopped_is_never_posted(
    settings: Settings,
) -> None:
    app = create_intake(settings)  # its lifespan is not run: no dispatcher but this test's own
    runtime: Runtime = app.state.runtime
    tokens = Tokens(settings)
    requests: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return httpx.Response(204)

    try:
        await _queue(runtime, "https://partner.example/hook", ["d-1"])  # sub-1, of nhs-1
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as api:
            stop = "/v1/subscriptions/sub-1"
            another_agency = {"Authorization": f"Bearer {tokens.agency('la-inclusion-service')}"}
            assert (await api.delete(stop, headers=another_agency)).status_code == 404
            owner = {"Authorization": f"Bearer {tokens.agency('nhs-1')}"}
            assert (await api.delete(stop, headers=owner)).status_code == 204
        async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as client:
            assert await WebhookDispatcher(runtime).deliver_due(client) == 1
        (stored,) = await runtime.db[DELIVERIES].find({}).to_list()
    finally:
        await runtime.client.close()

    assert requests == []
    assert stored["status"] == "failed"  # for good: no retry is due
    assert [attempt["error"] for attempt in stored["attempts"]] == ["subscription removed"]


async def test_a_receiver_slower_than_the_webhook_timeout_fails_the_attempt_and_it_is_retried(
    settings: Settings,
) -> None:
    """SIGNPOST_WEBHOOK_TIMEOUT_S at 0.2 s: the first POST gets no answer within it and is recorded
    as failed, with a retry due; the retry, answered at once, delivers."""
    limited = settings.model_copy(update={"webhook_timeout_s": 0.2, "webhook_retry_base_s": 0.01})
    runtime = Runtime.build(limited, "intake")
    posts: list[httpx.Request] = []

    async def silent_then_prompt(request: httpx.Request) -> httpx.Response:
        posts.append(request)
        if len(posts) == 1:
            await asyncio.Event().wait()  # answers never: only the time limit ends this attempt
        return httpx.Response(204)

    try:
        await _queue(runtime, "https://partner.example/hook", ["d-1"])
        dispatcher = WebhookDispatcher(runtime)
        async with httpx.AsyncClient(transport=httpx.MockTransport(silent_then_prompt)) as client:
            # Bounded, so that a dispatcher without the limit fails here rather than hangs.
            assert await asyncio.wait_for(dispatcher.deliver_due(client), timeout=30) == 1
            (after_first,) = await runtime.db[DELIVERIES].find({}).to_list()
            await eventually(lambda: dispatcher.deliver_due(client), what="the retry falls due and is sent")
        (stored,) = await runtime.db[DELIVERIES].find({}).to_list()
    finally:
        await runtime.client.close()

    assert after_first["status"] == "pending" and after_first["next_attempt_at"] is not None
    assert [(a["status_code"], a["error"]) for a in after_first["attempts"]] == [
        (None, "TimeoutError: no answer within 0.2 s")
    ]
    assert stored["status"] == "delivered" and len(posts) == 2
    assert [a["status_code"] for a in stored["attempts"]] == [None, 204]


async def test_a_round_reads_only_the_due_deliveries_from_an_index(replicas: tuple[Runtime, Runtime]) -> None:
    """A partner down for a day leaves many deliveries waiting for their retries, beside a month of
    finished ones: a round reads the due ones alone. With an index on (status, next_attempt_at) and
    the tenant beside them in the query, SecantusDB read every pending delivery, every round."""
    runtime = replicas[0]
    await INDEXES.apply(runtime.db)
    tenant = runtime.settings.tenant
    later = datetime.now(UTC) + timedelta(hours=1)
    await runtime.db[DELIVERIES].insert_many(
        [
            *(_delivery(f"due-{n}", tenant=tenant) for n in range(3)),
            *({**_delivery(f"retry-{n}", tenant=tenant), "next_attempt_at": later} for n in range(40)),
            *({**_delivery(f"done-{n}", tenant=tenant), "status": "delivered", "next_attempt_at": None}
              for n in range(40)),
        ]
    )  # fmt: skip
    async with watched(runtime) as (watching, sent), httpx.AsyncClient(timeout=5) as http:
        assert await WebhookDispatcher(watching).deliver_due(http) == 3  # no subscription: failed at once

    # The round's first query (the due ids) asked again: the three have failed meanwhile, so it
    # reads nothing, none of the forty waiting for their retry either.
    find = sent.named("find", DELIVERIES)[0]
    scans, stats = await scanned(runtime.db[DELIVERIES].find(find["filter"]).sort(find["sort"]))
    assert scans == [{"tenant": 1, "status": 1, "next_attempt_at": 1}]
    assert stats["totalDocsExamined"] == 0
