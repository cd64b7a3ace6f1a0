"""What a practitioner does to a referral after submitting it: add information, withdraw."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from signpost.intake.referrals.access import visible_referrals
from signpost.intake.referrals.models import InformationRequest, WithdrawRequest
from signpost.intake.referrals.service import (
    SOURCE,
    ReferralClosed,
    change_referral,
    save_referral,
    timeline_entry,
)
from signpost.shared.auth.principal import Principal
from signpost.shared.events import Envelope, ReferralInformationAddedV1, ReferralWithdrawnV1, new_event
from signpost.shared.lifecycle import CLOSED, Move, ReferralStatus, apply_move
from signpost.shared.mongo import Document, Session
from signpost.shared.service import Runtime


async def withdraw_referral(
    *, runtime: Runtime, referral_id: str, principal: Principal, request: WithdrawRequest, correlation_id: str
) -> Document:
    async def change(referral: Document, session: Session) -> list[Envelope[Any]]:
        status = apply_move(ReferralStatus(referral["status"]), Move.WITHDRAW)
        now = datetime.now(UTC)
        event = new_event(
            ReferralWithdrawnV1(referral_id=referral_id, reason=request.reason, withdrawn_at=now),
            source=SOURCE,
            tenant=referral["tenant"],
            subject=referral_id,
            correlation_id=correlation_id,
        )
        # Every offer still open ends with the referral, so agencies stop work on it.
        finished = {*CLOSED, ReferralStatus.DECLINED}
        offers = [
            offer if ReferralStatus(offer["status"]) in finished else {**offer, "status": status.value}
            for offer in referral["offers"]
        ]
        note = f"{request.reason.value}: {request.note}" if request.note else request.reason.value
        await save_referral(
            runtime=runtime,
            before=referral,
            changes={"status": status.value, "offers": offers, "withdrawn_at": now},
            timeline=[timeline_entry(event=event, status=status, actor=principal, note=note)],
            session=session,
        )
        return [event]

    return await change_referral(
        runtime=runtime,
        referral_id=referral_id,
        visible=visible_referrals(principal, tenant=runtime.settings.tenant),
        change=change,
    )


async def add_information(
    *,
    runtime: Runtime,
    referral_id: str,
    principal: Principal,
    request: InformationRequest,
    correlation_id: str,
) -> Document:
    """A new entry, never an overwrite: the original referral stays as submitted."""

    async def change(referral: Document, session: Session) -> list[Envelope[Any]]:
        current = ReferralStatus(referral["status"])
        if current in CLOSED:
            raise ReferralClosed(current)
        now = datetime.now(UTC)
        event = new_event(
            ReferralInformationAddedV1(
                referral_id=referral_id, needs_profile=request.needs_profile, added_at=now
            ),
            source=SOURCE,
            tenant=referral["tenant"],
            subject=referral_id,
            correlation_id=correlation_id,
        )
        changes: Document = {
            "information": [
                *referral["information"],
                {"at": now, "text": request.text, "by": principal.subject},
            ]
        }
        if request.needs_profile is not None:
            changes["needs_profile"] = {
                domain.value: score for domain, score in request.needs_profile.items()
            }
        await save_referral(
            runtime=runtime,
            before=referral,
            changes=changes,
            timeline=[timeline_entry(event=event, status=current, actor=principal, note="information added")],
            session=session,
        )
        return [event]

    return await change_referral(
        runtime=runtime,
        referral_id=referral_id,
        visible=visible_referrals(principal, tenant=runtime.settings.tenant),
        change=change,
    )
