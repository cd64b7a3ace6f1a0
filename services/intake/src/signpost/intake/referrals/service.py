"""Intake's referral logic: accept a referral with its events, move it through its lifecycle.

Every change is one MongoDB transaction that updates the referral, appends to its
timeline and stages the event announcing it (transactional outbox).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any

import uuid6
from pymongo import UpdateOne
from pymongo.errors import BulkWriteError
from signpost.intake.offers.keys import with_offer_keys
from signpost.intake.referrals.access import SYSTEM_ACTOR, visible_referrals
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
from signpost.shared.groupcommit import GroupCommit
from signpost.shared.lifecycle import (
    CLOSED,
    IllegalTransition,
    Move,
    ReferralStatus,
    apply_move,
    status_from_offers,
)
from signpost.shared.logging import get_logger
from signpost.shared.mongo import Database, Document, Session, find_by_ids, lost_a_race_to_insert
from signpost.shared.outbox import stage_event, stage_events
from signpost.shared.service import Runtime
from signpost.shared.settings import Settings
from signpost.shared.timestamps import day_in_england
from signpost.shared.vocabulary import EscalationReason, NeedCode, broad_areas

log = get_logger(__name__)

SOURCE = "/signpost/intake"
CHILD_DETAILS = "child_details"
IDEMPOTENCY_KEYS = "idempotency_keys"
# On a declined offer until routing re-routes it or names its needs unmet: the referral stays open.
AWAITING_ROUTING = "awaiting_routing"


def idempotency_key_id(*, tenant: str, organisation: str, subject: str, key: str) -> str:
    """Where an Idempotency-Key is stored: its caller's area, organisation and subject and the key,
    as a JSON array, so no two callers' keys meet whatever their parts hold (joined with colons,
    subject "a" with key "x:k" was subject "a:x" with key "k" of the same organisation)."""
    return json.dumps([tenant, organisation, subject, key], separators=(",", ":"))


def legacy_idempotency_key_id(*, organisation: str, subject: str, key: str) -> str:
    """Where releases before `idempotency_key_id` stored a key: no area, ambiguous parts."""
    return f"{organisation}:{subject}:{key}"


# Every id `idempotency_key_id` makes is a JSON array of strings, so starts with `["`: it sorts at
# or after the first bound and before the second ('#' follows '"'). An old id sorts outside them.
_CURRENT_KEY_IDS = ('["', "[#")


async def legacy_idempotency_keys_remain(db: Database) -> bool:
    """Whether any Idempotency-Key is still stored under its old id (`legacy_idempotency_key_id`):
    one query on the `_id` index, for one document at most."""
    low, high = _CURRENT_KEY_IDS
    older = {"$or": [{"_id": {"$lt": low}}, {"_id": {"$gte": high}}]}
    return await db[IDEMPOTENCY_KEYS].find_one(older, {"_id": 1}) is not None


class LegacyKeyLookup:
    """Whether a keyed submission must look its key up under the old id too (`write_submissions`).

    Old ids are no longer written, and are pruned IDEMPOTENCY_KEY_RETENTION after first use; the
    look-up stops once none is left. Intake checks at start-up and after each prune pass of
    Idempotency-Keys (`refresh`), so a replica of an older release still writing old ids during a
    rolling upgrade turns it on again by the next pass. Until checked, it looks (the safe answer)."""

    def __init__(self) -> None:
        self.needed = True

    async def refresh(self, db: Database) -> None:
        self.needed = await legacy_idempotency_keys_remain(db)


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
        "actor_role": actor.role.value if actor else SYSTEM_ACTOR,
        "actor_organisation": actor.organisation if actor else event.source,
        "note": note,
    }


def _request_fingerprint(request: ReferralRequest) -> str:
    canonical = json.dumps(request.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class PendingSubmission:
    """A referral ready to be written: its documents, its events, and its Idempotency-Key if any."""

    referral: Document
    child_details: Document
    events: list[Envelope[Any]]
    key_id: str | None
    fingerprint: str
    key: str | None = None
    legacy_key_id: str | None = None

    def key_document(self) -> Document:
        return {
            "_id": self.key_id,
            "tenant": self.referral["tenant"],
            "organisation": self.referral["organisation"],
            "subject": self.referral["created_by"],
            "key": self.key,
            "fingerprint": self.fingerprint,
            "referral_id": self.referral["_id"],
            "created_at": self.referral["submitted_at"],
        }


def prepare_submission(
    *,
    settings: Settings,
    request: ReferralRequest,
    principal: Principal,
    correlation_id: str,
    idempotency_key: str | None,
) -> PendingSubmission:
    """The referral, the child's details and its events, built without I/O.

    A safeguarding concern escalates at once: `referral.escalated.v1` goes out with the
    submission and routing never matches it.
    """
    referral_id = str(uuid6.uuid7())
    now = datetime.now(UTC)
    tenant = settings.tenant
    announce = partial(new_event, source=SOURCE, tenant=tenant, correlation_id=correlation_id)
    submitted = announce(
        ReferralSubmittedV1(
            referral_id=referral_id,
            child_ref=child_reference(key=settings.pseudonym_key, tenant=tenant, child=request.child),
            age_years=age_on(request.child.date_of_birth, day_in_england(now)),
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
        "offer_keys": [],
        "unmet_needs": [],
        "timeline": timeline,
    }
    caller = {"organisation": principal.organisation, "subject": principal.subject}
    return PendingSubmission(
        referral=referral,
        child_details={"_id": referral_id, "tenant": tenant, **request.child.model_dump(mode="json")},
        events=events,
        key_id=idempotency_key_id(tenant=tenant, **caller, key=idempotency_key) if idempotency_key else None,
        fingerprint=_request_fingerprint(request),
        key=idempotency_key,
        legacy_key_id=legacy_idempotency_key_id(**caller, key=idempotency_key) if idempotency_key else None,
    )


def _same_caller(referral: Document, pending: PendingSubmission) -> bool:
    """Whether `referral` was submitted by the caller of `pending`: same area, organisation, subject."""
    return all(
        referral.get(field) == pending.referral[field] for field in ("tenant", "organisation", "created_by")
    )


async def write_submission(
    runtime: Runtime, pending: PendingSubmission, *, legacy_keys: LegacyKeyLookup | None = None
) -> Submission:
    """Store one referral with the child's details and its events in one transaction."""
    [outcome] = await write_submissions(runtime, [pending], legacy_keys=legacy_keys)
    if isinstance(outcome, Exception):
        raise outcome
    return outcome


async def write_submissions(
    runtime: Runtime, batch: Sequence[PendingSubmission], *, legacy_keys: LegacyKeyLookup | None = None
) -> list[Submission | Exception]:
    """Store a group of referrals in one transaction: one insert per collection and one commit.

    Each keeps its own answer: an Idempotency-Key seen before (or earlier in the same group)
    with the same body replays that referral, with another body raises IdempotencyConflict,
    which `GroupCommit` hands to that request alone. `legacy_keys` says whether a key may still be
    stored under its old id (None: assume it may).
    """
    db = runtime.db
    look_up_legacy = legacy_keys is None or legacy_keys.needed

    async def write(session: Session) -> list[Submission | Exception]:
        keys = [p.key_id for p in batch if p.key_id is not None]
        seen = await find_by_ids(db[IDEMPOTENCY_KEYS], keys, session=session)
        # A key first used before the upgrade is stored under its old id (`legacy_idempotency_key_id`)
        # for up to IDEMPOTENCY_KEY_RETENTION (7 days), and a retry across the upgrade must still be
        # recognised: where the new id is absent the old one is looked up too, and honoured only when
        # the referral it names is the same caller's (area, organisation, subject), as the old id
        # could name another's. Once every old id has been pruned (`LegacyKeyLookup`) it is skipped.
        legacy_ids = [
            p.legacy_key_id
            for p in batch
            if look_up_legacy and p.key_id not in seen and p.legacy_key_id is not None
        ]
        legacy = await find_by_ids(db[IDEMPOTENCY_KEYS], legacy_ids, session=session) if legacy_ids else {}
        earlier_ids = list({d["referral_id"] for d in [*seen.values(), *legacy.values()]})
        earlier = await find_by_ids(db[REFERRALS], earlier_ids, session=session)

        def stored_before(pending: PendingSubmission) -> Document | None:
            if pending.key_id in seen:
                return seen[pending.key_id]
            old = legacy.get(pending.legacy_key_id or "")
            referral = earlier.get(old["referral_id"]) if old else None
            return old if referral is not None and _same_caller(referral, pending) else None

        claimed: dict[str, PendingSubmission] = {}
        outcomes: list[Submission | Exception] = []
        new: list[PendingSubmission] = []
        for pending in batch:
            first = pending.key_id and (stored_before(pending) or claimed.get(pending.key_id))
            if not first:
                new.append(pending)
                if pending.key_id is not None:
                    claimed[pending.key_id] = pending
                outcomes.append(Submission(referral=pending.referral, replayed=False))
            elif isinstance(first, PendingSubmission):  # the same key earlier in this group
                same = first.fingerprint == pending.fingerprint
                outcomes.append(Submission(first.referral, replayed=True) if same else IdempotencyConflict())
            elif first["fingerprint"] != pending.fingerprint:
                outcomes.append(IdempotencyConflict())
            else:
                outcomes.append(Submission(referral=earlier[first["referral_id"]], replayed=True))
        if claimed:
            await db[IDEMPOTENCY_KEYS].insert_many(
                [p.key_document() for p in claimed.values()], session=session
            )
        if new:
            await db[REFERRALS].insert_many([p.referral for p in new], session=session)
            await db[CHILD_DETAILS].insert_many([p.child_details for p in new], session=session)
            events = [event for p in new for event in p.events]
            await stage_events(db, topic=runtime.topics.referrals, envelopes=events, session=session)
        return outcomes

    try:
        outcomes = await runtime.transaction(write)
    except BulkWriteError as exc:
        if not lost_a_race_to_insert(exc):
            raise
        # A key raced in from a concurrent request in another group or process: answer as the winner did.
        outcomes = await runtime.transaction(write)
    for outcome in outcomes:
        if isinstance(outcome, Submission) and not outcome.replayed:
            log.info(
                "referral accepted", referral_id=outcome.referral["_id"], status=outcome.referral["status"]
            )
    return outcomes


class Submissions:
    """Intake's referral writes, group-committed: concurrent submissions share one transaction."""

    def __init__(self, runtime: Runtime, *, legacy_keys: LegacyKeyLookup | None = None) -> None:
        settings = runtime.settings
        self._runtime = runtime
        self.legacy_keys = legacy_keys or LegacyKeyLookup()
        self._group: GroupCommit[PendingSubmission, Submission] = GroupCommit(
            write_batch=partial(write_submissions, runtime, legacy_keys=self.legacy_keys),
            write_one=partial(write_submission, runtime, legacy_keys=self.legacy_keys),
            max_batch=settings.intake_group_commit_max,
            linger_s=settings.intake_group_commit_wait_ms / 1000,
            max_waiting=settings.intake_waiting_max,
        )

    async def submit(
        self,
        *,
        request: ReferralRequest,
        principal: Principal,
        correlation_id: str,
        idempotency_key: str | None,
    ) -> Submission:
        pending = prepare_submission(
            settings=self._runtime.settings,
            request=request,
            principal=principal,
            correlation_id=correlation_id,
            idempotency_key=idempotency_key,
        )
        return await self._group.submit(pending)


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

    return await runtime.transaction(write)


@dataclass(frozen=True)
class ReferralChange:
    """A change to one referral, guarded by the status it was decided on, so that a concurrent change
    is never overwritten."""

    before: Document
    changes: Document
    timeline: list[Document]

    def update(self) -> UpdateOne:
        # A change to an erased referral (information added to an escalated one) may bring
        # personal data back: it is erased again once the retention period has passed anew.
        return UpdateOne(
            {"_id": self.before["_id"], "status": self.before["status"]},
            {
                "$set": with_offer_keys(self.changes),
                "$push": {"timeline": {"$each": self.timeline}},
                "$unset": {"erased_at": ""},
            },
        )

    def after(self) -> Document:
        changed = with_offer_keys(self.changes)
        kept = {k: v for k, v in self.before.items() if k != "erased_at"}
        return {**kept, **changed, "timeline": [*self.before["timeline"], *self.timeline]}


async def save_referral(
    *, runtime: Runtime, before: Document, changes: Document, timeline: list[Document], session: Session
) -> None:
    await save_referral_changes(
        runtime=runtime, changes=[ReferralChange(before, changes, timeline)], session=session
    )


async def save_referral_changes(
    *, runtime: Runtime, changes: Sequence[ReferralChange], session: Session
) -> None:
    """Write changes in order in one round trip; ConcurrentChange if any referral moved meanwhile
    (the transaction then writes none of them)."""
    if not changes:
        return
    result = await runtime.db[REFERRALS].bulk_write(
        [c.update() for c in changes], ordered=True, session=session
    )
    if result.modified_count != len(changes):
        raise ConcurrentChange(", ".join(dict.fromkeys(c.before["_id"] for c in changes)))


def routing_decision_change(
    *, envelope: Envelope[EventData], referral: Document | None
) -> ReferralChange | None:
    """What routing's decision (offers, or the unmet needs) changes on `referral`, the event's
    referral as the events before it left it; None when it changes nothing. The consumer hands over
    this area's events alone; the tenant is checked here too, as ids are unique only within an area."""
    data = envelope.data
    if not isinstance(data, ReferralRoutedV1 | ReferralUnmatchedV1 | ReferralEscalatedV1):
        return None
    if isinstance(data, ReferralEscalatedV1) and data.reason is not EscalationReason.EHC_ASSESSMENT:
        return None  # safeguarding escalations are intake's own, recorded when submitted
    if referral is None:
        log.warning("routing decision for an unknown referral; ignored", referral_id=data.referral_id)
        return None
    if referral.get("tenant") != envelope.tenant:  # another area's decision about an id of ours
        log.warning("routing decision of another area; ignored", referral_id=data.referral_id)
        return None
    if referral.get("erased_at") is not None:  # its child's details are gone: nobody could act on an offer
        log.warning("routing decision for an erased referral; ignored", referral_id=data.referral_id)
        return None
    current = ReferralStatus(referral["status"])
    try:
        if isinstance(data, ReferralRoutedV1) and data.replaces_provision_id:
            status, changes = _rerouted(referral, data)
        elif isinstance(data, ReferralUnmatchedV1) and data.declined_provision_id:
            status, changes = _not_rerouted(referral, data)
        elif isinstance(data, ReferralRoutedV1):
            status = apply_move(current, Move.ROUTE)
            changes = {
                "offers": _new_offers(data),
                "unmet_needs": _with_unmet(referral, data.unmet_needs),
                "decided_at": data.routed_at,
            }
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
        return None
    timeline = [timeline_entry(event=envelope, status=status, actor=None)]
    return ReferralChange(referral, {**changes, "status": status.value}, timeline)


def _new_offers(data: ReferralRoutedV1) -> list[Document]:
    return [{**offer.model_dump(mode="json"), "status": ReferralStatus.ROUTED.value} for offer in data.offers]


def package_status(offers: list[Document]) -> ReferralStatus:
    """A routed referral's status from its offers (`status_from_offers`).

    An offer declined before `awaiting_routing` was recorded reads as answered: whether routing's
    answer is still to come is not known, and waiting for one that came long ago would hold the
    referral open for ever."""
    return status_from_offers(
        [ReferralStatus(offer["status"]) for offer in offers],
        awaiting_routing=any(offer.get(AWAITING_ROUTING, False) for offer in offers),
    )


def _answered(offers: list[Document], provision_id: str) -> list[Document]:
    """The offers, with routing's answer for the declined `provision_id` recorded."""
    return [
        {**offer, AWAITING_ROUTING: False}
        if offer["provision_id"] == provision_id and offer.get(AWAITING_ROUTING, False)
        else offer
        for offer in offers
    ]


def _still_open(referral: Document) -> None:
    current = ReferralStatus(referral["status"])
    if current in CLOSED or current is ReferralStatus.ESCALATED:
        raise ReferralClosed(current)


def _rerouted(referral: Document, data: ReferralRoutedV1) -> tuple[ReferralStatus, Document]:
    """Offers replacing a declined one join the package; the referral follows its offers."""
    assert data.replaces_provision_id is not None
    _still_open(referral)
    offers = [*_answered(referral["offers"], data.replaces_provision_id), *_new_offers(data)]
    return package_status(offers), {"offers": offers, "unmet_needs": _with_unmet(referral, data.unmet_needs)}


def _not_rerouted(referral: Document, data: ReferralUnmatchedV1) -> tuple[ReferralStatus, Document]:
    """Nothing can replace a declined offer: its needs are unmet, and the referral follows its
    other offers (completed if they all were; unmatched if every offer was declined)."""
    assert data.declined_provision_id is not None
    _still_open(referral)
    offers = _answered(referral["offers"], data.declined_provision_id)
    return package_status(offers), {"offers": offers, "unmet_needs": _with_unmet(referral, data.unmet_needs)}


def _with_unmet(referral: Document, needs: Sequence[NeedCode]) -> list[str]:
    """The referral's unmet needs and `needs`, each once: a route that meets some needs names the
    rest, and so does each answer to a decline."""
    return list(dict.fromkeys([*referral["unmet_needs"], *(need.value for need in needs)]))
