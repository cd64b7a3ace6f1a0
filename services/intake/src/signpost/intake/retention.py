"""What intake deletes once it is past its retention, and the timers that delete it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import partial

from signpost.intake.audit.service import AUDIT
from signpost.intake.referrals.erasure import erase_ended_referrals
from signpost.intake.referrals.service import IDEMPOTENCY_KEYS, LegacyKeyLookup
from signpost.intake.subscriptions.models import DELIVERIES, DeliveryStatus
from signpost.shared.events import first_event_id_at
from signpost.shared.mongo import Database
from signpost.shared.retention import keep_pruning, prune_in_chunks
from signpost.shared.service import Runtime

FINISHED_DELIVERIES = [DeliveryStatus.DELIVERED.value, DeliveryStatus.FAILED.value]
# How long an Idempotency-Key is remembered, as common APIs do: a retry comes within minutes, and
# the same key a week on makes a new referral.
IDEMPOTENCY_KEY_RETENTION = timedelta(days=7)
# Personal data is kept for years: a daily pass is soon enough, and its walk over the referrals
# ended before the cutoff (erased ones included, as nothing indexes erasure) is not repeated often.
ERASURE_INTERVAL_S = 24 * 3600.0


async def prune_deliveries(db: Database, *, tenant: str, before: datetime) -> int:
    """Delete `tenant`'s webhook deliveries queued before `before` that were delivered or given up
    on; a pending one stays, however old, until it is one or the other. Delivery ids are UUIDv7,
    whose text sorts by time, so "queued before" is a range of ids and needs no index."""
    queued_before = {"$lt": first_event_id_at(before.timestamp())}
    return await prune_in_chunks(
        db, DELIVERIES, {"_id": queued_before, "tenant": tenant, "status": {"$in": FINISHED_DELIVERIES}}
    )


async def prune_idempotency_keys(db: Database, *, before: datetime) -> int:
    """Delete the Idempotency-Keys first used before `before`. Their ids are the keys themselves,
    not in time order, so each pass reads every key's date: a week's submissions, kept small by
    the pass itself, which an index on the date would cost every submission to keep."""
    return await prune_in_chunks(db, IDEMPOTENCY_KEYS, {"created_at": {"$lt": before}})


async def prune_audit(db: Database, *, tenant: str, before: datetime) -> int:
    """Delete `tenant`'s audit records made before `before`, found by the trail's (tenant, at)
    index: years of reads, which an `_id` range would scan whole on SecantusDB."""
    return await prune_in_chunks(db, AUDIT, {"tenant": tenant, "at": {"$lt": before}})


def schedule_retention(runtime: Runtime, *, legacy_keys: LegacyKeyLookup | None = None) -> None:
    """Prune on timers for as long as intake runs. Every replica does: a prune deletes only what
    is past retention when it deletes, so two at once do no harm. Each pass keeps to this area's
    records with this area's periods: start-up refuses another area's database
    (`signpost.shared.area`), and the tenant in each query is a second guard. After each pass over
    the Idempotency-Keys, `legacy_keys` learns whether any is still stored under its old id."""
    tenant = runtime.settings.tenant
    delivery_retention = timedelta(days=runtime.settings.webhook_delivery_retention_days)

    async def deliveries() -> int:
        return await prune_deliveries(
            runtime.db, tenant=tenant, before=datetime.now(UTC) - delivery_retention
        )

    async def idempotency_keys() -> int:
        pruned = await prune_idempotency_keys(
            runtime.db, before=datetime.now(UTC) - IDEMPOTENCY_KEY_RETENTION
        )
        if legacy_keys is not None:
            await legacy_keys.refresh(runtime.db)
        return pruned

    personal_data_retention = timedelta(days=runtime.settings.personal_data_retention_days)

    async def personal_data() -> int:
        cutoff = datetime.now(UTC) - personal_data_retention
        return await erase_ended_referrals(
            runtime.db, tenant=tenant, ended_before=cutoff
        ) + await prune_audit(runtime.db, tenant=tenant, before=cutoff)

    runtime.background.append(partial(keep_pruning, "webhook deliveries", deliveries))
    runtime.background.append(partial(keep_pruning, "idempotency keys", idempotency_keys))
    runtime.background.append(
        partial(keep_pruning, "personal data and audit records", personal_data, interval_s=ERASURE_INTERVAL_S)
    )
