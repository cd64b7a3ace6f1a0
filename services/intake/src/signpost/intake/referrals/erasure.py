"""Erasing a referral's personal data once it has been ended for the retention period.

UK GDPR's storage limitation: the child's identifying details, the referrer's contact
details and every free text a person wrote go; what the referral was (its pseudonymous
child reference, needs, level, locality, setting, offers and the dates and statuses of its
timeline) stays, so history links and analytics (which never held the details) stay valid.
"""

from __future__ import annotations

from datetime import UTC, datetime

from signpost.intake.audit.service import AUDIT, ERASED, RETENTION, audit_record
from signpost.intake.referrals.models import REFERRALS
from signpost.intake.referrals.service import CHILD_DETAILS
from signpost.shared.events import first_event_id_at
from signpost.shared.lifecycle import CLOSED, ReferralStatus
from signpost.shared.mongo import Database, Document, Session, find_by_ids, in_area
from signpost.shared.retention import in_chunks

# Where a referral waits for nobody: closed, handed to the front door, or left with no match. An
# escalated referral may still be withdrawn and an unmatched one routed again, so their retention,
# like a closed one's, counts from the referral's last change: any later change starts it again
# (and makes an erased referral due once more: `ReferralChange` unsets `erased_at`).
ENDED = sorted(status.value for status in {*CLOSED, ReferralStatus.ESCALATED, ReferralStatus.UNMATCHED})
IDENTIFYING_REFERRER_FIELDS = ("referrer.name", "referrer.phone", "referrer.email")


def last_changed_at(referral: Document) -> datetime:
    at: datetime = referral["timeline"][-1]["at"]
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def scrubbed(referral: Document) -> Document:
    """The referral's free text, emptied: what a person wrote may name anyone."""
    approach = referral.get("graduated_approach")
    return {
        "information": [{**entry, "text": ""} for entry in referral.get("information", [])],
        "timeline": [{**entry, "note": ""} for entry in referral["timeline"]],
        "graduated_approach": {**approach, "summary": ""} if approach else approach,
    }


async def erase_ended_referrals(db: Database, *, tenant: str, ended_before: datetime) -> int:
    """Erase the personal data of every referral of `tenant` ended, and unchanged, since before
    `ended_before`; returns how many were erased. Submitted before it too, so the walk is a range of
    ids (UUIDv7), read a chunk at a time; each erasure is recorded in the audit trail in the same
    transaction. Only `tenant`'s: the cutoff is that area's retention, not another's."""
    query = {
        "_id": {"$lt": first_event_id_at(ended_before.timestamp())},
        "tenant": tenant,
        "status": {"$in": ENDED},
        "erased_at": None,
    }

    async def erase(session: Session, ids: list[str]) -> int:
        found = await find_by_ids(db[REFERRALS], ids, session=session)
        due = [
            referral
            for referral in found.values()
            if in_area(referral, tenant)
            and referral["status"] in ENDED
            and referral.get("erased_at") is None
            and last_changed_at(referral) < ended_before
        ]
        if not due:
            return 0
        now = datetime.now(UTC)
        for referral in due:
            # Read in this transaction: a change since conflicts, and the driver runs it all again.
            await db[REFERRALS].update_one(
                {"_id": referral["_id"]},
                {
                    "$set": {**scrubbed(referral), "erased_at": now},
                    "$unset": dict.fromkeys(IDENTIFYING_REFERRER_FIELDS, ""),
                },
                session=session,
            )
        erased = [referral["_id"] for referral in due]
        await db[CHILD_DETAILS].delete_many({"_id": {"$in": erased}}, session=session)
        erasures = [
            audit_record(
                tenant=referral["tenant"],
                referral_id=referral["_id"],
                what=ERASED,
                purpose=RETENTION,
                by=None,
                at=now,
            )
            for referral in due
        ]
        await db[AUDIT].insert_many(erasures, session=session)
        return len(due)

    return await in_chunks(db, REFERRALS, query, erase)
