"""The referral fact: one document per referral, folded from its lifecycle events (pure).

The fact is the projection's source of truth: every aggregate is a function of the
facts (see `counters.py`), so events may arrive in any order — an offer accepted before
its referral's submission simply waits in the fact until the submission gives it a
day, a locality and needs to be counted under. The ids of the events folded in are
kept in the fact itself, so a redelivered event changes nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime

from signpost.shared.events import REFERRAL_EVENTS as REFERRAL_EVENTS  # one list, shared by fold.py
from signpost.shared.events import (
    Envelope,
    EventData,
    OfferAcceptedV1,
    OfferCompletedV1,
    OfferDeclinedV1,
    OfferStartedV1,
    ReferralEscalatedV1,
    ReferralInformationAddedV1,
    ReferralRoutedV1,
    ReferralSubmittedV1,
    ReferralUnmatchedV1,
    ReferralWithdrawnV1,
)
from signpost.shared.mongo import Document


def fact_id(tenant: str, referral_id: str) -> str:
    return f"{tenant}|{referral_id}"


def new_fact(tenant: str, referral_id: str) -> Document:
    return {
        "_id": fact_id(tenant, referral_id),
        "tenant": tenant,
        "referral_id": referral_id,
        "events": [],
        "submitted": None,
        "routed_at": None,
        "unmatched": False,
        "escalated": None,
        "withdrawn_at": None,
        "offers": {},
    }


def apply_event(fact: Document | None, envelope: Envelope[EventData]) -> Document | None:
    """The fact after `envelope`, or None when the event was folded in before (a redelivery)."""
    data = envelope.data
    assert isinstance(data, REFERRAL_EVENTS)
    if fact is not None and envelope.id in fact["events"]:
        return None
    after = _copy(fact) if fact is not None else new_fact(envelope.tenant, data.referral_id)
    after["events"].append(envelope.id)
    _fold(after, data)
    return after


def _fold(fact: Document, data: EventData) -> None:
    if isinstance(data, ReferralSubmittedV1):
        fact["submitted"] = {
            "at": stored_moment(data.submitted_at),
            "locality": data.locality,
            "setting": data.setting_id,
            "needs": [need.value for need in data.need_codes],
            "areas": [area.value for area in data.broad_areas],
            "level": data.level_of_need.value,
            "child_ref": data.child_ref,
            "profile": {domain.value: score for domain, score in data.needs_profile.items()},
        }
    elif isinstance(data, ReferralInformationAddedV1):
        if data.needs_profile:
            submitted = fact["submitted"] if fact["submitted"] is not None else fact.setdefault("pending", {})
            submitted["profile"] = {domain.value: score for domain, score in data.needs_profile.items()}
    elif isinstance(data, ReferralRoutedV1):
        fact["routed_at"] = _earliest(fact["routed_at"], data.routed_at)
        for offer in data.offers:
            entry = _offer(fact, offer.provision_id)
            entry["sector"] = offer.sector.value
            entry["organisation"] = offer.organisation_id
            entry["offered_at"] = _earliest(entry.get("offered_at"), data.routed_at)
    elif isinstance(data, ReferralUnmatchedV1):
        fact["unmatched"] = True
    elif isinstance(data, ReferralEscalatedV1):
        fact["escalated"] = data.reason.value
        fact["escalated_at"] = stored_moment(data.escalated_at)
    elif isinstance(data, ReferralWithdrawnV1):
        fact["withdrawn_at"] = stored_moment(data.withdrawn_at)
    elif isinstance(data, OfferAcceptedV1):
        entry = _offer(fact, data.provision_id)
        entry["accepted_at"] = _earliest(entry.get("accepted_at"), data.at)
    elif isinstance(data, OfferDeclinedV1):
        _offer(fact, data.provision_id)["declined"] = data.reason.value
    elif isinstance(data, OfferStartedV1):
        entry = _offer(fact, data.provision_id)
        entry["started_at"] = _earliest(entry.get("started_at"), data.at)
    elif isinstance(data, OfferCompletedV1):
        entry = _offer(fact, data.provision_id)
        entry["completed_at"] = stored_moment(data.at)
        entry["outcome"] = data.outcome.value
        entry["profile_after"] = {domain.value: score for domain, score in data.needs_profile_after.items()}
    if fact["submitted"] is not None and "pending" in fact:
        # Information added that arrived before its submission (out of order) is the newer profile.
        fact["submitted"]["profile"] = fact.pop("pending")["profile"]


def _copy(fact: Document) -> Document:
    """Deep enough for `_fold`, which replaces profiles whole and changes only these containers."""
    copied = {
        **fact,
        "events": list(fact["events"]),
        "offers": {k: dict(v) for k, v in fact["offers"].items()},
    }
    if fact["submitted"] is not None:
        copied["submitted"] = dict(fact["submitted"])
    if "pending" in fact:
        copied["pending"] = dict(fact["pending"])
    return copied


def _offer(fact: Document, provision_id: str) -> Document:
    offer: Document = fact["offers"].setdefault(provision_id, {})
    return offer


def _earliest(current: datetime | None, candidate: datetime) -> datetime:
    candidate = stored_moment(candidate)
    return candidate if current is None or candidate < current else current


def stored_moment(moment: datetime) -> datetime:
    """UTC to the millisecond, as MongoDB keeps it: a fact must count the same before and after a round trip."""
    moment = moment.astimezone(UTC)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)
