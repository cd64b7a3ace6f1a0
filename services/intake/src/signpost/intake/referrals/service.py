"""Intake's referral logic: accept a referral with its events, move it through its lifecycle.

Every change is one MongoDB transaction that updates the referral, appends to its
timeline and stages the event announcing it (transactional outbox).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any

import uuid6
from pymongo.errors import DuplicateKeyError
from signpost.intake.referrals.access import visible_referrals
from signpost.intake.referrals.models import (
    REFERRALS,
    ReferralRequest,
    age_on,
)
from signpost.intake.referrals.pseudonym import child_reference
from signpost.shared.auth.principal import Principal
from signpost.shared.events import (
    Envelope,
    EventData,
    ReferralEscalatedV1,
    ReferralRoutedV1,
    ReferralSubmittedV1,
    ReferralUnmatchedV1,
    new_event,
)
from signpost.shared.lifecycle import (
    CLOSED,
    IllegalTransition,
    Move,
    ReferralStatus,
    apply_move,
    status_from_offers,
)
from signpost.shared.logging import get_logger
from signpost.shared.mongo import Document, Session, in_transaction
from signpost.shared.outbox import stage_event
from signpost.shared.service import Runtime
from signpost.shared.vocabulary import EscalationReason, broad_areas

log = get_logger(__name__)

SOURCE = "/signpost/intake"
CHILD_DETAILS = "child_details"
IDEMPOTENCY_KEYS = "idempotency_keys"


class IdempotencyConflict(Exception):
    """The same Idempotency-Key was used before with a different request body."""


class NotFound(LookupError):
    pass


class ReferralClosed(Exception):
    """A completed or withdrawn referral takes no more changes."""

    def __init__(self, status: ReferralStatus) -> None:
        super().__init__(f"the referral is {status.value}; a closed referral takes no more changes")
        self.status = status


class ConcurrentChange(Exception):
    """Someone else changed the referral between our read and our write; the caller may retry."""


@dataclass(frozen=True)
class Submission:
    referral: Document
    replayed: bool


def timeline_entry(
    *, event: Envelope[Any], status: ReferralStatus, actor: Principal | None, note: str = ""
) -> Document:
    return {
        "at": event.time,
        "type": event.type,
        "status": status.value,
        "actor_role": actor.role.value if actor else "system",
        "actor_organisation": actor.organisation if actor else event.source,
        "note": note,
    }


def _request_fingerprint(request: ReferralRequest) -> str:
    canonical = json.dumps(request.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


async def submit_referral(
    *,
    runtime: Runtime,
    request: ReferralRequest,
    principal: Principal,
    correlation_id: str,
    idempotency_key: str | None,
) -> Submission:
    """Store the referral, the child's details and its events in one transaction.

    A safeguarding concern escalates at once: `referral.escalated.v1` goes out with the
    submission and routing never matches it.
    """
    settings = runtime.settings
    referral_id = str(uuid6.uuid7())
    now = datetime.now(UTC)
    tenant = settings.tenant
    announce = partial(
        new_event, source=SOURCE, tenant=tenant, subject=referral_id, correlation_id=correlation_id
    )
    submitted = announce(
        ReferralSubmittedV1(
            referral_id=referral_id,
            child_ref=child_reference(key=settings.pseudonym_key, tenant=tenant, child=request.child),
            age_years=age_on(request.child.date_of_birth, now.date()),
            locality=request.locality,
            setting_id=request.setting_id,
            need_codes=request.need_codes,
            broad_areas=broad_areas(request.need_codes),
            family_needs=request.family_needs,
            needs_profile=request.needs_profile,
            level_of_need=request.level_of_need,
            urgency=request.urgency,
            sharing_scope=request.consent.sharing_scope,
            graduated_approach_cycles=(
                request.graduated_approach.cycles_completed if request.graduated_approach else 0
            ),
            graduated_approach_worked=request.graduated_approach.worked
            if request.graduated_approach
            else None,
            safeguarding_concern=request.safeguarding_concern,
            submitted_at=now,
        ),
    )
    events: list[Envelope[Any]] = [submitted]
    timeline = [timeline_entry(event=submitted, status=ReferralStatus.SUBMITTED, actor=principal)]
    status = ReferralStatus.SUBMITTED
    if request.safeguarding_concern:
        status = apply_move(status, Move.ESCALATE)
        escalated = announce(
            ReferralEscalatedV1(
                referral_id=referral_id,
                reason=EscalationReason.SAFEGUARDING,
                locality=request.locality,
                setting_id=request.setting_id,
                escalated_at=now,
            ),
            causation_id=submitted.id,
        )
        events.append(escalated)
        timeline.append(
            timeline_entry(event=escalated, status=status, actor=None, note="safeguarding: front door")
        )
    data = submitted.data
    assert isinstance(data, ReferralSubmittedV1)
    referral: Document = {
        "_id": referral_id,
        "tenant": tenant,
        "status": status.value,
        "organisation": principal.organisation,
        "created_by": principal.subject,
        "referrer": request.referrer.model_dump(mode="json"),
        "child_ref": data.child_ref,
        "age_years": data.age_years,
        "locality": request.locality,
        "setting_id": request.setting_id,
        "need_codes": [code.value for code in request.need_codes],
        "family_needs": [need.value for need in request.family_needs],
        "needs_profile": {domain.value: score for domain, score in request.needs_profile.items()},
        "level_of_need": request.level_of_need.value,
        "urgency": request.urgency.value,
        "graduated_approach": request.graduated_approach.model_dump(mode="json")
        if request.graduated_approach
        else None,
        "consent": request.consent.model_dump(mode="json"),
        "safeguarding_concern": request.safeguarding_concern,
        "escalation_reason": EscalationReason.SAFEGUARDING.value if request.safeguarding_concern else None,
        "information": [{"at": now, "text": request.details, "by": principal.subject}]
        if request.details
        else [],
        "submitted_at": now,
        "submitted_event_id": submitted.id,  # what reconciliation publishes again if no decision comes
        "decided_at": now if request.safeguarding_concern else None,
        "offers": [],
        "unmet_needs": [],
        "timeline": timeline,
    }
    fingerprint = _request_fingerprint(request)
    key_id = f"{principal.organisation}:{principal.subject}:{idempotency_key}" if idempotency_key else None

    async def write(session: Session) -> Document | None:
        if key_id is not None:
            seen = await runtime.db[IDEMPOTENCY_KEYS].find_one({"_id": key_id}, session=session)
            if seen is not None:
                if seen["fingerprint"] != fingerprint:
                    raise IdempotencyConflict
                return await runtime.db[REFERRALS].find_one({"_id": seen["referral_id"]}, session=session)
            await runtime.db[IDEMPOTENCY_KEYS].insert_one(
                {"_id": key_id, "fingerprint": fingerprint, "referral_id": referral_id, "created_at": now},
                session=session,
            )
        await runtime.db[REFERRALS].insert_one(referral, session=session)
        await runtime.db[CHILD_DETAILS].insert_one(
            {"_id": referral_id, "tenant": tenant, **request.child.model_dump(mode="json")}, session=session
        )
        for event in events:
            await stage_event(runtime.db, topic=runtime.topics.referrals, envelope=event, session=session)
        return None

    try:
        earlier = await in_transaction(runtime.client, write)
    except DuplicateKeyError:
        # The same key raced in from a concurrent retry: answer as the winner did.
        earlier = await in_transaction(runtime.client, write)
    if earlier is not None:
        return Submission(referral=earlier, replayed=True)
    runtime.events_committed()
    log.info("referral accepted", referral_id=referral_id, status=status.value)
    return Submission(referral=referral, replayed=False)


@dataclass(frozen=True)
class Decision:
    """What a move does to a referral: the event announcing it, the new status, the changed fields."""

    data: EventData
    status: ReferralStatus
    changes: Document
    note: str = ""


async def change_referral(
    *,
    runtime: Runtime,
    referral_id: str,
    principal: Principal,
    correlation_id: str,
    decide: Callable[[Document], Decision],
) -> Document:
    """Read a referral the caller may see, apply `decide`'s change, timeline entry and event, in one transaction."""

    async def write(session: Session) -> Document:
        visible = visible_referrals(principal, tenant=runtime.settings.tenant)
        referral = await runtime.db[REFERRALS].find_one({"_id": referral_id, **visible}, session=session)
        if referral is None:
            raise NotFound(referral_id)
        decision = decide(referral)
        event = new_event(
            decision.data,
            source=SOURCE,
            tenant=referral["tenant"],
            subject=referral_id,
            correlation_id=correlation_id,
        )
        entry = timeline_entry(event=event, status=decision.status, actor=principal, note=decision.note)
        await save_referral(
            runtime=runtime,
            before=referral,
            changes={**decision.changes, "status": decision.status.value},
            timeline=[entry],
            session=session,
        )
        await stage_event(runtime.db, topic=runtime.topics.referrals, envelope=event, session=session)
        updated = await runtime.db[REFERRALS].find_one({"_id": referral_id}, session=session)
        assert updated is not None
        return updated

    updated = await in_transaction(runtime.client, write)
    runtime.events_committed()
    return updated


async def save_referral(
    *, runtime: Runtime, before: Document, changes: Document, timeline: list[Document], session: Session
) -> None:
    """Write a change guarded by the status it was decided on, so a concurrent change cannot be overwritten."""
    result = await runtime.db[REFERRALS].update_one(
        {"_id": before["_id"], "status": before["status"]},
        {"$set": changes, "$push": {"timeline": {"$each": timeline}}},
        session=session,
    )
    if result.modified_count != 1:
        raise ConcurrentChange(before["_id"])


async def record_routing_decision(
    *, runtime: Runtime, envelope: Envelope[EventData], session: Session
) -> None:
    """Record routing's decision (offers, or the unmet needs) inside the caller's transaction."""
    data = envelope.data
    if not isinstance(data, ReferralRoutedV1 | ReferralUnmatchedV1 | ReferralEscalatedV1):
        return
    if isinstance(data, ReferralEscalatedV1) and data.reason is not EscalationReason.EHC_ASSESSMENT:
        return  # safeguarding escalations are intake's own, recorded when submitted
    referral = await runtime.db[REFERRALS].find_one({"_id": data.referral_id}, session=session)
    if referral is None:
        log.warning("routing decision for an unknown referral; ignored", referral_id=data.referral_id)
        return
    current = ReferralStatus(referral["status"])
    try:
        if isinstance(data, ReferralRoutedV1) and data.replaces_provision_id:
            status, changes = _rerouted(referral, data)
        elif isinstance(data, ReferralUnmatchedV1) and data.declined_provision_id:
            status, changes = _not_rerouted(referral, data)
        elif isinstance(data, ReferralRoutedV1):
            status = apply_move(current, Move.ROUTE)
            changes = {"offers": _new_offers(data), "decided_at": data.routed_at}
        elif isinstance(data, ReferralEscalatedV1):
            status = apply_move(current, Move.ESCALATE)
            changes = {"escalation_reason": data.reason.value, "decided_at": data.escalated_at}
        else:
            status = apply_move(current, Move.UNMATCH)
            changes = {
                "unmet_needs": [need.value for need in data.unmet_needs],
                "decided_at": data.decided_at,
            }
    except (IllegalTransition, ReferralClosed) as exc:
        log.warning("routing decision ignored", referral_id=data.referral_id, reason=str(exc))
        return
    await save_referral(
        runtime=runtime,
        before=referral,
        changes={**changes, "status": status.value},
        timeline=[timeline_entry(event=envelope, status=status, actor=None)],
        session=session,
    )


def _new_offers(data: ReferralRoutedV1) -> list[Document]:
    return [{**offer.model_dump(mode="json"), "status": ReferralStatus.ROUTED.value} for offer in data.offers]


def _still_open(referral: Document) -> ReferralStatus:
    current = ReferralStatus(referral["status"])
    if current in CLOSED or current is ReferralStatus.ESCALATED:
        raise ReferralClosed(current)
    return current


def _rerouted(referral: Document, data: ReferralRoutedV1) -> tuple[ReferralStatus, Document]:
    """Offers replacing a declined one join the package; the referral follows its offers."""
    _still_open(referral)
    offers = [*referral["offers"], *_new_offers(data)]
    return status_from_offers([ReferralStatus(o["status"]) for o in offers]), {"offers": offers}


def _not_rerouted(referral: Document, data: ReferralUnmatchedV1) -> tuple[ReferralStatus, Document]:
    """Nothing can replace a declined offer: its needs are unmet, and if every offer was declined, so is the referral."""
    current = _still_open(referral)
    unmet = list(dict.fromkeys([*referral["unmet_needs"], *(need.value for need in data.unmet_needs)]))
    status = apply_move(current, Move.UNMATCH) if current is ReferralStatus.DECLINED else current
    return status, {"unmet_needs": unmet}
