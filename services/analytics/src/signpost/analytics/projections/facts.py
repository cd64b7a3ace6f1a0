"""The referral fact: one document per referral, folded from its lifecycle events (pure).

The fact is the projection's source of truth: every aggregate is a function of the
facts (see `counters.py`). A referral's events come in the order they happened (one
partition), and the fold follows it as intake does: a routing decision for a referral
already closed changes nothing, and a completed offer's needs change is measured from the
profile as it was when the offer completed. An event that arrives before its referral's
submission all the same simply waits in the fact until the submission gives it a day, a
locality and needs to be counted under. The ids of the events folded in are kept in the
fact itself, so a redelivered event changes nothing.

Intake's events and routing's are each in their own order, but not always in order with
each other: a broker that lost its log gets every service's outbox again, one service's
after another's, and intake may read routing's decision only after its own later move. So
what intake's record depends on is folded whichever comes first: routing's answer to a
declined offer is marked on the offer (`answered`), which its decline then respects;
`unmatched()` is worked out from the whole fact, not when an answer comes; and a withdrawal
from `submitted` (`withdrawn_from`) means intake applied no routing decision, so the fact
counts none, folded before the withdrawal or after it.

Facts written by the previous release lack `unmet_needs` and an offer's `profile_before`;
`unmet_needs()` and `counters.measures` read them as that release counted them, until a
rebuild folds the log again. Likewise facts without `found_nothing` keep the `unmatched`
that release stored.
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
from signpost.shared.lifecycle import ReferralStatus
from signpost.shared.mongo import Document
from signpost.shared.vocabulary import EscalationReason, NeedCode

# Routing's decisions, which intake ignores for a referral already closed (withdrawn or completed);
# a safeguarding escalation is intake's own, at submission, before anything can close it.
DECISIONS = (ReferralRoutedV1, ReferralUnmatchedV1, ReferralEscalatedV1)
# On a declined offer until routing answers it (a replacement, or its needs unmet): as in intake,
# the referral stays open for the answer. Offers declined under the previous release read as answered.
AWAITING_ROUTING = "awaiting_routing"
# On an offer routing has answered the decline of (a replacement, or its needs unmet), kept whether
# the decline has been folded yet or not: a decline folded after its answer awaits nothing.
ANSWERED = "answered"
# Whether routing's first decision found no provision at all (`unmatched()`); a fact of the previous
# release lacks it.
FOUND_NOTHING = "found_nothing"
# What routing's decisions put on an offer, taken off again when a withdrawal from `submitted` shows
# intake applied none of them.
ROUTING_FIELDS = ("offered_at", "sector", "organisation", ANSWERED)


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
        FOUND_NOTHING: False,
        "unmet_needs": [],
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


def unmatched(fact: Document) -> bool:
    """Unmatched as intake records it (`lifecycle.status_from_offers`): routing's first decision
    found nothing, or every offer was declined and routing has answered each decline with nothing
    to replace it, whatever order those came in. A fact of the previous release kept what it worked
    out as each answer came: read so until a rebuild."""
    if FOUND_NOTHING not in fact:
        return bool(fact["unmatched"])
    if fact[FOUND_NOTHING]:
        return True
    offers = fact["offers"].values()
    return (
        bool(offers)
        and all("declined" in offer for offer in offers)
        and not any(offer.get(AWAITING_ROUTING, False) for offer in offers)
    )


def unmet_needs(fact: Document) -> list[str]:
    """The needs routing found no provision for. A fact of the previous release kept only that
    the referral was unmatched, which counted every need of it: read so until a rebuild."""
    if "unmet_needs" in fact:
        needs: list[str] = fact["unmet_needs"]
        return needs
    return fact["submitted"]["needs"] if fact["unmatched"] and fact["submitted"] is not None else []


def _fold(fact: Document, data: EventData) -> None:
    if isinstance(data, DECISIONS) and _closed(fact):
        return
    if FOUND_NOTHING not in fact:  # of the previous release: what it counted unmatched stays so
        fact[FOUND_NOTHING] = fact["unmatched"]
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
        _answered(fact, data.replaces_provision_id)
        _unmet(fact, data.unmet_needs)  # needs routed around: no provision for them, others offered
        fact["routed_at"] = _earliest(fact["routed_at"], data.routed_at)
        for offer in data.offers:
            entry = _offer(fact, offer.provision_id)
            entry["sector"] = offer.sector.value
            entry["organisation"] = offer.organisation_id
            entry["offered_at"] = _earliest(entry.get("offered_at"), data.routed_at)
    elif isinstance(data, ReferralUnmatchedV1):
        _answered(fact, data.declined_provision_id)
        if data.declined_provision_id is None:  # a first decision: no provision at all
            fact[FOUND_NOTHING] = True
        _unmet(fact, data.unmet_needs)
    elif isinstance(data, ReferralEscalatedV1):
        fact["escalated"] = data.reason.value
        fact["escalated_at"] = stored_moment(data.escalated_at)
    elif isinstance(data, ReferralWithdrawnV1):
        fact["withdrawn_at"] = stored_moment(data.withdrawn_at)
        if data.withdrawn_from is ReferralStatus.SUBMITTED:
            _undecided(fact)
    elif isinstance(data, OfferAcceptedV1):
        entry = _offer(fact, data.provision_id)
        entry["accepted_at"] = _earliest(entry.get("accepted_at"), data.at)
    elif isinstance(data, OfferDeclinedV1):
        entry = _offer(fact, data.provision_id)
        entry["declined"] = data.reason.value
        if not entry.get(ANSWERED, False):  # else routing's answer came first
            entry[AWAITING_ROUTING] = True
    elif isinstance(data, OfferStartedV1):
        entry = _offer(fact, data.provision_id)
        entry["started_at"] = _earliest(entry.get("started_at"), data.at)
    elif isinstance(data, OfferCompletedV1):
        entry = _offer(fact, data.provision_id)
        entry["completed_at"] = stored_moment(data.at)
        entry["outcome"] = data.outcome.value
        entry["profile_after"] = {domain.value: score for domain, score in data.needs_profile_after.items()}
        before = _profile(fact)
        if before is not None:  # else (out of order, nothing scored yet) counters use the referral's
            entry["profile_before"] = before
    if fact["submitted"] is not None and "pending" in fact:
        # Information added that arrived before its submission (out of order) is the newer profile.
        fact["submitted"]["profile"] = fact.pop("pending")["profile"]
    fact["unmatched"] = unmatched(fact)  # stored too, for whoever reads the document


def _closed(fact: Document) -> bool:
    """As intake's status (lifecycle.CLOSED): withdrawn, or every offer routing made and no agency
    declined completed, with no decline awaiting routing's answer. An offer whose routing has not
    arrived (out of order) is not known to be one of them."""
    if fact["withdrawn_at"] is not None:
        return True
    if any(offer.get(AWAITING_ROUTING, False) for offer in fact["offers"].values()):
        return False
    live = _live(fact)
    return bool(live) and all("completed_at" in offer for offer in live)


def _live(fact: Document) -> list[Document]:
    """The offers routing made that no agency declined."""
    return [offer for offer in fact["offers"].values() if "offered_at" in offer and "declined" not in offer]


def _answered(fact: Document, declined: str | None) -> None:
    """Routing's answer to the declined offer `declined` (if this decision is one) has come: marked
    on the offer, whose decline may not have been folded yet. Routing answers only offers it made,
    in a decision after the one that made it, so the offer is in the fact."""
    if declined is not None and declined in fact["offers"]:
        entry = fact["offers"][declined]
        entry[ANSWERED] = True
        entry.pop(AWAITING_ROUTING, None)


def _undecided(fact: Document) -> None:
    """Withdrawn from `submitted`: intake applied none of routing's decisions, and ignores those it
    reads after (a closed referral). Those folded before the withdrawal are undone, so the fact is
    what folding them after it gives (`_closed` ignores those): no offers, nothing unmet, not
    unmatched, no escalation for an EHC needs assessment. A safeguarding escalation is intake's own;
    an offer an agency moved (none can have been: intake made no offer) keeps that."""
    fact["routed_at"] = None
    fact[FOUND_NOTHING] = False
    fact["unmet_needs"] = []
    if fact["escalated"] is not None and fact["escalated"] != EscalationReason.SAFEGUARDING.value:
        fact["escalated"] = None
        fact.pop("escalated_at", None)
    offers = {}
    for provision_id, offer in fact["offers"].items():
        kept = {k: v for k, v in offer.items() if k not in ROUTING_FIELDS}
        if kept:
            offers[provision_id] = kept
    fact["offers"] = offers


def _unmet(fact: Document, needs: list[NeedCode]) -> None:
    """Several decisions may each leave needs unmet (a first route, declined offers not replaced): all of them."""
    if needs:
        fact["unmet_needs"] = list(dict.fromkeys([*unmet_needs(fact), *(need.value for need in needs)]))


def _profile(fact: Document) -> dict[str, int] | None:
    """The needs profile as last updated: added information arrived before its submission is newer."""
    for holder in (fact.get("pending"), fact["submitted"]):
        if holder is not None and "profile" in holder:
            profile: dict[str, int] = holder["profile"]
            return profile
    return None


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
