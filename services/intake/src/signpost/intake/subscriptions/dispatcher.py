"""Delivers queued events to partners' webhooks as CloudEvents over HTTP (binary mode).

Each attempt is recorded; a failure (whatever went wrong) is retried with doubling delays
until the last attempt, after which the delivery is marked failed and stays in the log
until retention deletes it (`signpost.intake.retention`).

Every intake replica runs a dispatcher on the same database. A round first claims its due
deliveries, moving their next attempt past the end of any attempt in flight, so no other
replica sends them meanwhile; it records a failure only while its claim holds, and nothing
overwrites a delivery once delivered.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from contextlib import suppress
from datetime import UTC, datetime, timedelta

import httpx
from signpost.intake.subscriptions.models import DELIVERIES, SUBSCRIPTIONS, DeliveryStatus
from signpost.intake.subscriptions.signing import SIGNATURE_HEADER, sign
from signpost.shared.errors import describe_error
from signpost.shared.logging import get_logger
from signpost.shared.mongo import Document, find_by_ids
from signpost.shared.outbound import OutboundRefused, check_outbound
from signpost.shared.service import Runtime

log = get_logger(__name__)

BATCH = 50
MAX_RETRY_DELAY_S = 3600.0
# A claim outlasts the request timeout by this much: time to record the outcome.
CLAIM_MARGIN_S = 30.0


def retry_delay_s(attempt: int, base_s: float) -> float:
    """How long after failed attempt number `attempt` (from 1) the next one falls due."""
    return min(MAX_RETRY_DELAY_S, base_s * 2.0 ** (attempt - 1))


class WebhookDispatcher:
    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self._settings = runtime.settings
        self._wake = asyncio.Event()

    def notify(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        async with httpx.AsyncClient(
            timeout=self._settings.webhook_timeout_s, follow_redirects=False
        ) as client:
            while True:
                try:
                    sent = await self.deliver_due(client)
                except Exception as exc:
                    log.warning("webhook dispatcher failed a round; retrying", error=describe_error(exc))
                    sent = 0
                    await asyncio.sleep(1)
                if sent:
                    continue
                self._wake.clear()
                with suppress(TimeoutError):  # asyncio.timeout: see OutboxRelay.run on wait_for
                    async with asyncio.timeout(self._settings.outbox_poll_interval_s):
                        await self._wake.wait()

    async def deliver_due(self, client: httpx.AsyncClient) -> int:
        db = self._runtime.db
        due = await self._claim_due()
        if not due:
            return 0
        subscription_ids = list({delivery["subscription_id"] for delivery in due})
        subscriptions = {
            s["_id"]: s async for s in db[SUBSCRIPTIONS].find({"_id": {"$in": subscription_ids}})
        }
        outcomes = await asyncio.gather(
            *(self._attempt(client, d, subscriptions.get(d["subscription_id"])) for d in due),
            return_exceptions=True,  # the others finish, so none is still in flight to be sent again
        )
        unrecorded = [outcome for outcome in outcomes if isinstance(outcome, Exception)]
        if unrecorded:  # the database, most likely: run() waits before the next round
            raise ExceptionGroup("webhook attempts could not be recorded", unrecorded)
        return len(due)

    async def _claim_due(self) -> list[Document]:
        """This round's deliveries, up to BATCH: those due that this replica claimed first. A few
        queries whatever the batch: the due ids, one update claiming them, a read of those won.
        This area's only: its subscriptions, its URLs policy, its retries."""
        deliveries = self._runtime.db[DELIVERIES]
        now = datetime.now(UTC)
        due = {
            "status": DeliveryStatus.PENDING.value,
            "next_attempt_at": {"$lte": now},
            "tenant": self._settings.tenant,
        }
        found = deliveries.find(due, {"_id": 1}).sort("next_attempt_at").limit(BATCH)
        ids = [delivery["_id"] async for delivery in found]
        if not ids:
            return []
        claim = uuid.uuid4().hex
        lease = timedelta(seconds=self._settings.webhook_timeout_s + CLAIM_MARGIN_S)
        # Still due is the condition: of replicas racing for a delivery, only the first matches it.
        await deliveries.update_many(
            {"_id": {"$in": ids}, **due}, {"$set": {"claim": claim, "next_attempt_at": now + lease}}
        )
        claimed = await find_by_ids(deliveries, ids)
        return [delivery for delivery in claimed.values() if delivery.get("claim") == claim]

    async def _attempt(
        self, client: httpx.AsyncClient, delivery: Document, subscription: Document | None
    ) -> None:
        attempted_at = datetime.now(UTC)
        if subscription is None or not subscription["active"]:
            await self._record(delivery, attempted_at, None, "subscription removed", 0, final=True)
            return
        try:  # also for a subscription stored before the setting was: no request, no DNS lookup
            check_outbound(subscription["url"], loopback_only=self._settings.outbound_loopback_only)
        except OutboundRefused as exc:
            await self._record(delivery, attempted_at, None, f"refused: url {exc}", 0, final=False)
            return
        started = time.monotonic()
        status_code, error = await _post(
            client, delivery, subscription, timeout_s=self._settings.webhook_timeout_s
        )
        duration_ms = int((time.monotonic() - started) * 1000)
        await self._record(delivery, attempted_at, status_code, error, duration_ms, final=False)

    async def _record(
        self,
        delivery: Document,
        at: datetime,
        status_code: int | None,
        error: str | None,
        duration_ms: int,
        *,
        final: bool,
    ) -> None:
        attempts = len(delivery["attempts"]) + 1
        if error is None:
            status, next_at = DeliveryStatus.DELIVERED, None
        elif final or attempts >= self._settings.webhook_max_attempts:
            status, next_at = DeliveryStatus.FAILED, None
        else:
            delay = retry_delay_s(attempts, self._settings.webhook_retry_base_s)
            status, next_at = DeliveryStatus.PENDING, at + timedelta(seconds=delay)
        # A failure counts only under this round's claim: once it lapsed, another replica may have
        # taken the delivery over. A success needs none; nothing overwrites delivered or failed.
        still_ours = {"_id": delivery["_id"], "status": DeliveryStatus.PENDING.value}
        if error is not None:
            still_ours["claim"] = delivery["claim"]
        result = await self._runtime.db[DELIVERIES].update_one(
            still_ours,
            {
                "$push": {
                    "attempts": {
                        "at": at,
                        "status_code": status_code,
                        "error": error,
                        "duration_ms": duration_ms,
                    }
                },
                "$set": {"status": status.value, "next_attempt_at": next_at},
            },
        )
        if not result.matched_count:
            log.warning("webhook attempt not recorded: its claim lapsed", delivery_id=delivery["_id"])
        elif error:
            log.info("webhook delivery failed", delivery_id=delivery["_id"], attempt=attempts, error=error)


async def _post(
    client: httpx.AsyncClient, delivery: Document, subscription: Document, *, timeout_s: float
) -> tuple[int | None, str | None]:
    """The status code and the error, if any. It never raises: an attempt that fails in any way
    is recorded and retried like any other, and stops no other delivery."""
    try:
        # The whole attempt, not each read as httpx times them, must end within the claim.
        async with asyncio.timeout(timeout_s):
            response = await client.post(
                subscription["url"], content=delivery["body"], headers=_headers(delivery, subscription)
            )
    except TimeoutError:
        return None, f"TimeoutError: no answer within {timeout_s:g} s"
    except httpx.HTTPError as exc:
        return None, f"{type(exc).__name__}: could not deliver"
    except Exception as exc:  # e.g. a host that is not valid IDNA: httpx raises a ValueError
        return None, f"{type(exc).__name__}: {exc}"
    return response.status_code, None if response.is_success else f"HTTP {response.status_code}"


def _headers(delivery: Document, subscription: Document) -> dict[str, str]:
    attributes = delivery["headers"]
    return {
        # CloudEvents HTTP binding: ce_* Kafka headers become ce-* HTTP headers.
        **{name.replace("ce_", "ce-", 1): value for name, value in attributes.items()},
        "content-type": "application/json",
        SIGNATURE_HEADER: sign(
            secret=subscription["secret"],
            body=delivery["body"],
            timestamp=int(time.time()),
            event_id=attributes["ce_id"],
            event_type=attributes["ce_type"],
            subject=attributes.get("ce_subject", ""),
        ),
        "Signpost-Delivery-Id": delivery["_id"],
    }
