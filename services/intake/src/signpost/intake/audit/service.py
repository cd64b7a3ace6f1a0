"""The audit trail of every read of a child's identifying details, and of their erasure.

Records are only ever inserted: no API updates or deletes them. Retention deletes them
`SIGNPOST_PERSONAL_DATA_RETENTION_DAYS` after they were made (`signpost.intake.retention`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum

import uuid6
from pymongo import ASCENDING, DESCENDING, IndexModel
from signpost.shared.auth.principal import Principal
from signpost.shared.mongo import Document
from signpost.shared.service import Runtime

AUDIT = "audit"
READ = "child_details"  # `what` of a read
ERASED = "personal_data_erased"  # `what` of an erasure by retention,
RETENTION = "retention"  # whose purpose this is (never a reader's)
SYSTEM = "signpost-intake"  # who erases: intake itself
AUDIT_INDEXES = [
    # The whole trail newest first, or a window of it: what an auditor asks without a referral or reader.
    IndexModel([("tenant", ASCENDING), ("at", DESCENDING)]),
    IndexModel([("tenant", ASCENDING), ("referral_id", ASCENDING), ("at", DESCENDING)]),
    IndexModel([("tenant", ASCENDING), ("subject", ASCENDING), ("at", DESCENDING)]),
]


class Purpose(StrEnum):
    CONTACT_FAMILY = "contact_family"
    ASSESSMENT = "assessment"
    SERVICE_DELIVERY = "service_delivery"
    SAFEGUARDING = "safeguarding"
    CORRECTION = "correction"  # the referrer checking or correcting what they sent


async def record_read(*, runtime: Runtime, principal: Principal, referral_id: str, purpose: Purpose) -> None:
    await runtime.db[AUDIT].insert_one(
        audit_record(
            tenant=runtime.settings.tenant,
            referral_id=referral_id,
            what=READ,
            purpose=purpose.value,
            by=principal,
            at=datetime.now(UTC),
        )
    )


def audit_record(
    *, tenant: str, referral_id: str, what: str, purpose: str, by: Principal | None, at: datetime
) -> Document:
    """One audit record: who (None: intake itself, as when retention erases) did what, and why."""
    actor = (
        {"subject": by.subject, "name": by.name, "role": by.role.value, "organisation": by.organisation}
        if by
        else {"subject": SYSTEM, "name": None, "role": "system", "organisation": SYSTEM}
    )
    return {
        "_id": str(uuid6.uuid7()),
        "tenant": tenant,
        "at": at,
        **actor,
        "referral_id": referral_id,
        "what": what,
        "purpose": purpose,
    }


async def find_records(
    *,
    runtime: Runtime,
    referral_id: str | None,
    subject: str | None,
    since: datetime | None,
    until: datetime | None,
    limit: int,
) -> list[Document]:
    query: Document = {"tenant": runtime.settings.tenant}
    if referral_id:
        query["referral_id"] = referral_id
    if subject:
        query["subject"] = subject
    window: Document = {}
    if since:
        window["$gte"] = since
    if until:
        window["$lt"] = until
    if window:
        query["at"] = window
    return await runtime.db[AUDIT].find(query).sort("at", DESCENDING).limit(limit).to_list()
