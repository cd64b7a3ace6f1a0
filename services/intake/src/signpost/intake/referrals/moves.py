"""What a practitioner does to a referral after submitting it: add information, withdraw."""

from __future__ import annotations

from datetime import UTC, datetime

from signpost.intake.referrals.models import InformationRequest, WithdrawRequest
from signpost.intake.referrals.service import Decision, ReferralClosed
from signpost.shared.events import ReferralInformationAddedV1, ReferralWithdrawnV1
from signpost.shared.lifecycle import CLOSED, Move, ReferralStatus, apply_move
from signpost.shared.mongo import Document

# The one move a referral's own endpoints take; adding information is no move, and offers move on theirs.
REFERRAL_MOVES: frozenset[Move] = frozenset({Move.WITHDRAW})


def withdrawal(referral: Document, request: WithdrawRequest) -> Decision:
    """The event names the status the referral is withdrawn from (the write is guarded by it): from
    `submitted`, intake applied no routing decision and ignores any it reads after, so analytics
    counts no offers even where routing's decision precedes the withdrawal on the log."""
    current = ReferralStatus(referral["status"])
    status = apply_move(current, Move.WITHDRAW, REFERRAL_MOVES)
    now = datetime.now(UTC)
    # Every offer still open ends with the referral, so agencies stop work on it.
    finished = {*CLOSED, ReferralStatus.DECLINED}
    offers = [
        offer if ReferralStatus(offer["status"]) in finished else {**offer, "status": status.value}
        for offer in referral["offers"]
    ]
    return Decision(
        data=ReferralWithdrawnV1(
            referral_id=referral["_id"], reason=request.reason, withdrawn_at=now, withdrawn_from=current
        ),
        status=status,
        changes={"offers": offers, "withdrawn_at": now, "withdrawn_reason": request.reason.value},
        note=f"{request.reason.value}: {request.note}" if request.note else request.reason.value,
    )


def added_information(referral: Document, request: InformationRequest, *, author: str) -> Decision:
    """A new entry, never an overwrite: the referral as submitted stays as it was."""
    current = ReferralStatus(referral["status"])
    if current in CLOSED:
        raise ReferralClosed(current)
    now = datetime.now(UTC)
    changes: Document = {
        "information": [*referral["information"], {"at": now, "text": request.text, "by": author}]
    }
    if request.needs_profile is not None:
        changes["needs_profile"] = {domain.value: score for domain, score in request.needs_profile.items()}
    return Decision(
        data=ReferralInformationAddedV1(
            referral_id=referral["_id"], needs_profile=request.needs_profile, added_at=now
        ),
        status=current,
        changes=changes,
        note="information added",
    )
