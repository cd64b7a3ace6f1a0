"""Routing decisions and the loop that follows them, each stored with its events in one transaction.

- a submitted referral is matched once (one decision record per referral);
- a declined offer is re-routed to the next best provision not yet tried for the
  needs it was to meet that no other live offer covers, or those are announced as unmet;
- capacity is reserved when an offer is accepted and released when that support
  completes or the referral is withdrawn, in whichever order those events arrive;
- waiting times are learnt from acceptance to start (`waiting.py`);
- an acceptance or start of an offer routing never made (no decision of that referral offered
  that provision) is skipped, said and counted (`NEVER_MADE`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from pymongo import ReturnDocument
from signpost.routing.catalogue.models import PROVISIONS
from signpost.routing.catalogue.repository import from_document
from signpost.routing.catalogue.service import provision_changed
from signpost.routing.catalogue.snapshot import CatalogueSnapshot
from signpost.routing.decisions.waiting import accepted_offers, note_accepted, note_started, offer_key
from signpost.routing.matching import Catalogue, match_referral
from signpost.shared.events import (
    Envelope,
    EventData,
    Offer,
    OfferAcceptedV1,
    OfferCompletedV1,
    OfferDeclinedV1,
    OfferStartedV1,
    ReferralEscalatedV1,
    ReferralRoutedV1,
    ReferralSubmittedV1,
    ReferralUnmatchedV1,
    ReferralWithdrawnV1,
    new_event,
)
from signpost.shared.logging import get_logger
from signpost.shared.mongo import Document, Session, find_by_ids, in_area, mark_processed
from signpost.shared.outbox import restage_event, stage_event, stage_events
from signpost.shared.service import Runtime
from signpost.shared.vocabulary import EscalationReason, LevelOfNeed, NeedCode

log = get_logger(__name__)

DECISIONS = "decisions"
RESERVATIONS = "reservations"
SOURCE = "/signpost/routing"
NO_PROVISION = "no active provision in the Local Offer covers these needs for this age, locality and level"


# What routing does something with besides submissions; every other event changes nothing here.
ACTED_ON = (OfferDeclinedV1, OfferAcceptedV1, OfferCompletedV1, ReferralWithdrawnV1, OfferStartedV1)


async def on_referral_event(
    *, runtime: Runtime, envelope: Envelope[EventData], catalogue: CatalogueSnapshot
) -> None:
    data = envelope.data
    if isinstance(data, ReferralSubmittedV1):
        await route_referral(runtime=runtime, envelope=envelope, catalogue=catalogue)
    elif isinstance(data, OfferDeclinedV1):
        await reroute_after_decline(runtime=runtime, envelope=envelope, catalogue=catalogue)
    elif isinstance(data, OfferAcceptedV1 | OfferCompletedV1 | ReferralWithdrawnV1):
        await track_capacity(runtime=runtime, envelope=envelope)
    elif isinstance(data, OfferStartedV1):
        await learn_waiting_time(runtime=runtime, envelope=envelope)


async def on_referral_events(
    *, runtime: Runtime, envelopes: Sequence[Envelope[EventData]], catalogue: CatalogueSnapshot
) -> None:
    """A batch, in order: each run of consecutive submissions is routed in one transaction; any
    other event routing acts on is handled on its own. Events it ignores (its own decisions, most
    of the stream after submissions) are dropped first, so they do not break up the runs."""
    run: list[Envelope[EventData]] = []
    for envelope in envelopes:
        if isinstance(envelope.data, ReferralSubmittedV1):
            run.append(envelope)
        elif isinstance(envelope.data, ACTED_ON):
            await route_referrals(runtime=runtime, envelopes=run, catalogue=catalogue)
            run = []
            await on_referral_event(runtime=runtime, envelope=envelope, catalogue=catalogue)
    await route_referrals(runtime=runtime, envelopes=run, catalogue=catalogue)


async def route_referral(
    *, runtime: Runtime, envelope: Envelope[EventData], catalogue: CatalogueSnapshot
) -> None:
    """Match a submitted referral and record the decision with the event that announces it."""
    await route_referrals(runtime=runtime, envelopes=[envelope], catalogue=catalogue)


@dataclass(frozen=True)
class _Routed:
    cause: Envelope[EventData]
    submitted: ReferralSubmittedV1
    decision: EventData
    event: Envelope[EventData]
    offers: list[Offer]
    decided_at: datetime

    def record(self) -> Document:
        return {
            "_id": self.submitted.referral_id,
            "tenant": self.cause.tenant,
            "event_id": self.event.id,
            "type": self.event.type,
            "submitted_event_id": self.cause.id,
            "decided_at": self.decided_at,
            "child_ref": self.submitted.child_ref,
            "submitted": self.submitted.model_dump(mode="json"),
            "provision_ids": [offer.provision_id for offer in self.offers],
            "offers": [offer.model_dump(mode="json") for offer in self.offers],
            "data": self.decision.model_dump(mode="json"),
        }


ANNOUNCED_AGAIN = "decision announced again"
# Its event left the outbox (published ones go after a week), so intake, still waiting, is not told:
# reconciliation backs off and at last counts the referral stuck (docs/operations.md).
DECISION_GONE = (
    "submission of a decided referral came again, but its decision event is no longer in the outbox"
)


async def route_referrals(
    *, runtime: Runtime, envelopes: Sequence[Envelope[EventData]], catalogue: CatalogueSnapshot
) -> None:
    """Match submitted referrals and record each decision with the event announcing it, all in one
    transaction: one catalogue version check, one read of the decisions they touch, one write per
    collection.

    The decision record (one per referral) is what makes a submission's redelivery, under its own
    event id or another, change nothing: it is announced again instead (same event id, so consumers
    that have it skip it). Intake re-publishes submissions it heard no decision for, so this is
    also how a lost decision is recovered.
    """
    submissions = [
        (envelope, envelope.data)
        for envelope in envelopes
        # Safeguarding never reaches matching: intake has already escalated it to the front door.
        if isinstance(envelope.data, ReferralSubmittedV1) and not envelope.data.safeguarding_concern
    ]
    if not submissions:
        return
    min_cycles = runtime.settings.ehc_escalation_min_cycles
    to_match = any(not needs_ehc_assessment(data, min_cycles=min_cycles) for _, data in submissions)
    snapshot = await catalogue.current(runtime.db) if to_match else None

    async def write(session: Session) -> list[tuple[ReferralSubmittedV1, str, Envelope[EventData] | None]]:
        earlier, supported = await _decisions_touching(
            runtime, [data for _, data in submissions], session=session
        )
        outcomes: list[tuple[ReferralSubmittedV1, str, Envelope[EventData] | None]] = []
        decided: list[_Routed] = []
        for envelope, submitted in submissions:
            referral_id = submitted.referral_id
            if referral_id in earlier:
                announced = await restage_event(runtime.db, event_id=earlier[referral_id], session=session)
                outcomes.append((submitted, ANNOUNCED_AGAIN if announced else DECISION_GONE, None))
            elif any(d.submitted.referral_id == referral_id for d in decided):
                outcomes.append((submitted, "decided earlier in this batch", None))
            else:
                routed = _decide(
                    envelope,
                    submitted,
                    snapshot=snapshot,
                    served_before=supported.get(submitted.child_ref, frozenset()),
                    min_cycles=min_cycles,
                )
                decided.append(routed)
                outcomes.append((submitted, "referral routed", routed.event))
        if decided:
            await runtime.db[DECISIONS].insert_many([d.record() for d in decided], session=session)
            await stage_events(
                runtime.db,
                topic=runtime.topics.referrals,
                envelopes=[d.event for d in decided],
                session=session,
            )
        return outcomes

    outcomes = await runtime.transaction(write)
    for submitted, outcome, event in outcomes:
        say = log.warning if outcome == DECISION_GONE else log.info
        say(outcome, referral_id=submitted.referral_id, decision=event.type if event else None)


def _decide(
    envelope: Envelope[EventData],
    submitted: ReferralSubmittedV1,
    *,
    snapshot: Catalogue | None,
    served_before: frozenset[str],
    min_cycles: int,
) -> _Routed:
    """Escalate to an EHC needs assessment request, or match (`served_before`: the provisions that
    have supported the child, for continuity)."""
    now = datetime.now(UTC)
    offers: list[Offer] = []
    decision: EventData
    if snapshot is None or needs_ehc_assessment(submitted, min_cycles=min_cycles):
        decision = ReferralEscalatedV1(
            referral_id=submitted.referral_id,
            reason=EscalationReason.EHC_ASSESSMENT,
            locality=submitted.locality,
            setting_id=submitted.setting_id,
            escalated_at=now,
        )
    else:
        result = match_referral(submitted, snapshot, served_before=served_before)
        offers = result.offers
        decision = (
            ReferralRoutedV1(
                referral_id=submitted.referral_id,
                offers=offers,
                routed_at=now,
                unmet_needs=result.unmet_needs,
            )
            if offers
            else ReferralUnmatchedV1(
                referral_id=submitted.referral_id,
                unmet_needs=result.unmet_needs,
                locality=submitted.locality,
                reason=NO_PROVISION,
                decided_at=now,
            )
        )
    return _Routed(envelope, submitted, decision, _event(decision, envelope), offers, now)


def needs_ehc_assessment(referral: ReferralSubmittedV1, *, min_cycles: int) -> bool:
    """Specialist need that a documented graduated approach has not met: recommend an EHC
    needs assessment request rather than more early help (the area sets `min_cycles`)."""
    return (
        referral.level_of_need is LevelOfNeed.SPECIALIST
        and referral.graduated_approach_cycles >= min_cycles
        and referral.graduated_approach_worked is False
    )


async def reroute_after_decline(
    *, runtime: Runtime, envelope: Envelope[EventData], catalogue: CatalogueSnapshot
) -> None:
    """Offer the next best provisions not yet tried for the declined offer's needs that no other
    live offer covers, or name those needs as unmet."""
    declined = envelope.data
    assert isinstance(declined, OfferDeclinedV1)
    snapshot = await catalogue.current(runtime.db)

    async def write(session: Session) -> None:
        if not await mark_processed(runtime.db, event_id=envelope.id, session=session):
            return
        record = await runtime.db[DECISIONS].find_one({"_id": declined.referral_id}, session=session)
        if record is None:
            log.warning("decline of an offer routing never made; ignored", referral_id=declined.referral_id)
            return
        needs = needs_to_reroute(record, declined.provision_id)
        if needs is None:
            return
        now = datetime.now(UTC)
        served_before = await _supported_before(runtime, record.get("child_ref", ""), session=session)
        decision = _reroute(record, declined, needs, snapshot=snapshot, served_before=served_before, now=now)
        offers = decision.offers if isinstance(decision, ReferralRoutedV1) else []
        event = _event(decision, envelope)
        await runtime.db[DECISIONS].update_one(
            {"_id": declined.referral_id},
            {
                "$push": {
                    "provision_ids": {"$each": [o.provision_id for o in offers]},
                    "offers": {"$each": [o.model_dump(mode="json") for o in offers]},
                    "reroutes": {
                        "type": event.type,
                        "event_id": event.id,
                        "decided_at": now,
                        "data": decision.model_dump(mode="json"),
                    },
                }
            },
            session=session,
        )
        await stage_event(runtime.db, topic=runtime.topics.referrals, envelope=event, session=session)
        log.info("declined offer re-routed", referral_id=declined.referral_id, decision=event.type)

    await runtime.transaction(write)


def needs_to_reroute(record: Document, declined_provision_id: str) -> list[NeedCode] | None:
    """The declined offer's needs that no live offer (one not declined) covers, in the offer's
    order; None when routing never made that offer."""
    offer = next((o for o in record["offers"] if o["provision_id"] == declined_provision_id), None)
    if offer is None:
        return None
    gone = _declined(record) | {declined_provision_id}
    still_met = {need for o in record["offers"] if o["provision_id"] not in gone for need in o["needs_met"]}
    return [NeedCode(need) for need in offer["needs_met"] if need not in still_met]


def _declined(record: Document) -> set[str]:
    """The provisions whose offers were declined before: each decline has its answer in `reroutes`."""
    return {
        reroute["data"].get("replaces_provision_id") or reroute["data"]["declined_provision_id"]
        for reroute in record.get("reroutes", [])
    }


def _reroute(
    record: Document,
    declined: OfferDeclinedV1,
    needs: list[NeedCode],
    *,
    snapshot: Catalogue,
    served_before: frozenset[str],
    now: datetime,
) -> ReferralRoutedV1 | ReferralUnmatchedV1:
    """Offers for `needs` (`needs_to_reroute`) from provisions not yet tried, with continuity as on
    a first decision (`served_before`), or those needs named as unmet. Every decline is answered,
    so intake knows the package is settled: when the other offers still meet all its needs, the
    answer is an unmatched event naming no need."""
    if needs:
        child = ReferralSubmittedV1.model_validate({**record["submitted"], "need_codes": needs})
        tried = frozenset(record["provision_ids"])
        result = match_referral(child, snapshot, served_before=served_before, excluded=tried)
        if result.offers:
            return ReferralRoutedV1(
                referral_id=declined.referral_id,
                offers=result.offers,
                routed_at=now,
                replaces_provision_id=declined.provision_id,
                unmet_needs=result.unmet_needs,
            )
    name = next(o["provision_name"] for o in record["offers"] if o["provision_id"] == declined.provision_id)
    left = f"{NO_PROVISION} that has not been tried" if needs else "the package's other offers meet its needs"
    return ReferralUnmatchedV1(
        referral_id=declined.referral_id,
        unmet_needs=needs,
        locality=record["submitted"]["locality"],
        reason=f"declined by {name}; {left}",
        decided_at=now,
        declined_provision_id=declined.provision_id,
    )


# One reservation record per (referral, provision) offer, and one per withdrawn referral (provision
# `WHOLE_REFERRAL`). A record's state only moves forward, held or unheld -> released, and records are
# kept, so events of a referral may arrive in any order (intake's replicas each relay their own
# outbox): an end that comes first leaves a released record, and the acceptance that follows finds
# it and takes no place; a redelivered acceptance finds its record and takes no second place.
HELD = "held"  # a place taken; a record from before states were kept has no state and is held
UNHELD = "unheld"  # accepted when capacity was unknown or full: nothing taken, nothing to give back
RELEASED = "released"  # ended (completed, or the referral withdrawn); its place, if any, given back
WHOLE_REFERRAL = "*"  # no provision id has it (ids start with a letter or digit)

# An acceptance or start of an offer the referral's decision record does not hold (a referral routing
# never decided, or a provision it never offered) is skipped: logged, counted under this reason in
# signpost_events_skipped_total, and recorded as handled so that it is not retried.
NEVER_MADE = "offer_never_made"
# Set on the referral's decision record by every transaction that may change its reservations: the
# last acceptance, completion or withdrawal routing handled for it (event id, type, when). Those
# transactions write different reservation records (an acceptance its offer's, a withdrawal the
# whole referral's), so snapshot isolation alone would let an acceptance and a withdrawal handled
# at once each miss the other, and the place stay held for good. Writing this one document makes
# them conflict: one gets a WriteConflict and is run again by the transaction's retry
# (`signpost.shared.mongo.in_transaction`), reading what the other committed.
LAST_CAPACITY_EVENT = "last_capacity_event"


async def track_capacity(*, runtime: Runtime, envelope: Envelope[EventData]) -> None:
    """Hold a place while support is accepted or under way; give it back when it ends, whichever
    of the referral's events arrives first. An acceptance also starts the clock on the child's wait.
    An acceptance of an offer routing never made holds nothing (`NEVER_MADE`)."""
    data = envelope.data

    async def write(session: Session) -> bool:
        """False when the event is skipped as an offer routing never made."""
        if not await mark_processed(runtime.db, event_id=envelope.id, session=session):
            return True
        if isinstance(data, OfferAcceptedV1):
            if not await _note_capacity_event(
                runtime, envelope, data.referral_id, session, offered=data.provision_id
            ):
                return False
            await _reserve(runtime, data.referral_id, data.provision_id, session)
            await note_accepted(runtime=runtime, accepted=data, session=session)
        elif isinstance(data, OfferCompletedV1):
            await _note_capacity_event(runtime, envelope, data.referral_id, session)
            await _release_offer(runtime, data.referral_id, data.provision_id, session)
        elif isinstance(data, ReferralWithdrawnV1):
            await _note_capacity_event(runtime, envelope, data.referral_id, session)
            await _release_referral(runtime, data.referral_id, session)
        return True

    if not await runtime.transaction(write):
        assert isinstance(data, OfferAcceptedV1)
        _skip_never_made(runtime, envelope, data.referral_id, data.provision_id)


async def learn_waiting_time(*, runtime: Runtime, envelope: Envelope[EventData]) -> None:
    """Record the wait a started offer ended (`waiting.note_started`), once per event; a start of
    an offer routing never made is skipped, as its acceptance would be (`NEVER_MADE`)."""
    started = envelope.data
    assert isinstance(started, OfferStartedV1)

    async def write(session: Session) -> bool:
        """False when the event is skipped as an offer routing never made."""
        if not await mark_processed(runtime.db, event_id=envelope.id, session=session):
            return True
        made = await runtime.db[DECISIONS].find_one(
            _offering(started.referral_id, started.provision_id), {"_id": 1}, session=session
        )
        if made is None:
            return False
        await note_started(runtime=runtime, started=started, session=session)
        return True

    if not await runtime.transaction(write):
        _skip_never_made(runtime, envelope, started.referral_id, started.provision_id)


def _offering(referral_id: str, provision_id: str) -> Document:
    """The filter finding a referral's decision record if it offered this provision: `provision_ids`
    holds the first decision's offers and each re-route's (declined ones too, all tried)."""
    return {"_id": referral_id, "provision_ids": provision_id}


async def _note_capacity_event(
    runtime: Runtime,
    envelope: Envelope[EventData],
    referral_id: str,
    session: Session,
    *,
    offered: str | None = None,
) -> bool:
    """Set `LAST_CAPACITY_EVENT` on the referral's decision record, first in the transaction (so a
    concurrent one conflicts before doing more work); with `offered`, only if that decision offered
    it. Whether a record was written. A completion or withdrawal of a referral routing has no
    decision for writes none and still leaves its released record (an acceptance of that referral
    is skipped anyway)."""
    found = {"_id": referral_id} if offered is None else _offering(referral_id, offered)
    last = {"event_id": envelope.id, "type": envelope.type, "at": datetime.now(UTC)}
    # A new event id each time: the record always changes, so a concurrent writer always conflicts.
    noted = await runtime.db[DECISIONS].update_one(
        found, {"$set": {LAST_CAPACITY_EVENT: last}}, session=session
    )
    return noted.matched_count == 1


def _skip_never_made(
    runtime: Runtime, envelope: Envelope[EventData], referral_id: str, provision_id: str
) -> None:
    """Say and count, once its transaction has committed, an event of an offer routing never made."""
    log.warning(
        "event of an offer routing never made; skipped",
        event_type=envelope.type,
        referral_id=referral_id,
        provision_id=provision_id,
    )
    runtime.metrics.count_skipped(event_type=envelope.type, reason=NEVER_MADE)


async def _reserve(runtime: Runtime, referral_id: str, provision_id: str, session: Session) -> None:
    """Take a place, unless this offer has a record already: held before (an acceptance delivered
    again), or ended first (its completion, or the referral's withdrawal, arrived before it). The
    caller has checked that routing made this offer."""
    key = offer_key(referral_id, provision_id)
    known = await runtime.db[RESERVATIONS].find_one(
        {"_id": {"$in": [key, offer_key(referral_id, WHOLE_REFERRAL)]}}, {"state": 1}, session=session
    )
    if known is not None:
        log.info("acceptance of an offer held or ended before; no place taken", referral_id=referral_id)
        return
    taken = await runtime.db[PROVISIONS].find_one_and_update(
        {"_id": provision_id, "capacity.available": {"$gt": 0}},
        {"$inc": {"capacity.available": -1}, "$set": {"capacity.updated": _now()}},
        session=session,
        return_document=ReturnDocument.AFTER,
    )
    # None: capacity unknown or already full; the agency accepted anyway, nothing to hold
    await runtime.db[RESERVATIONS].insert_one(
        {
            "_id": key,
            "referral_id": referral_id,
            "provision_id": provision_id,
            "state": UNHELD if taken is None else HELD,
        },
        session=session,
    )
    if taken is not None:
        await provision_changed(
            runtime=runtime, provision=from_document(taken), change="updated", session=session
        )


async def _release_offer(runtime: Runtime, referral_id: str, provision_id: str, session: Session) -> None:
    """The offer's support ended: give back its place if one is held; if its acceptance has not
    arrived yet, leave a released record so that it takes none."""
    key = offer_key(referral_id, provision_id)
    record = await runtime.db[RESERVATIONS].find_one({"_id": key}, session=session)
    if record is None:
        await runtime.db[RESERVATIONS].insert_one(
            {"_id": key, "referral_id": referral_id, "provision_id": provision_id, "state": RELEASED},
            session=session,
        )
        return
    await _release(runtime, [record], session)


async def _release_referral(runtime: Runtime, referral_id: str, session: Session) -> None:
    """The referral was withdrawn: give back every place its offers hold, and leave a released
    record for the whole referral, so that an acceptance arriving after it takes none."""
    records = await runtime.db[RESERVATIONS].find({"referral_id": referral_id}, session=session).to_list()
    await _release(runtime, records, session)
    await runtime.db[RESERVATIONS].update_one(
        {"_id": offer_key(referral_id, WHOLE_REFERRAL)},
        {
            "$setOnInsert": {
                "referral_id": referral_id,
                "provision_id": WHOLE_REFERRAL,
                "state": RELEASED,
            }
        },
        upsert=True,
        session=session,
    )


async def _release(runtime: Runtime, records: Sequence[Document], session: Session) -> None:
    """Mark these records released; each one that held a place gives it back."""
    for record in records:
        if record.get("state") == RELEASED:
            continue
        await runtime.db[RESERVATIONS].update_one(
            {"_id": record["_id"]}, {"$set": {"state": RELEASED}}, session=session
        )
        if record.get("state", HELD) == UNHELD:
            continue
        current = await runtime.db[PROVISIONS].find_one({"_id": record["provision_id"]}, session=session)
        if current is None or current.get("capacity") is None:
            continue
        capacity = current["capacity"]
        freed = {"available": min(capacity["maximum"], capacity["available"] + 1), "updated": _now()}
        await runtime.db[PROVISIONS].update_one(
            {"_id": current["_id"]},
            {"$set": {f"capacity.{field}": value for field, value in freed.items()}},
            session=session,
        )
        current["capacity"].update(freed)
        await provision_changed(
            runtime=runtime, provision=from_document(current), change="updated", session=session
        )


def _now() -> str:
    """A capacity's `updated`, as the catalogue stores it: routing changing the figure is an update
    of it, so an ORUK import whose figure is no newer keeps the place (`oruk/importer.py`)."""
    return datetime.now(UTC).isoformat()


def _event(decision: EventData, cause: Envelope[EventData]) -> Envelope[EventData]:
    return new_event(
        decision,
        source=SOURCE,
        tenant=cause.tenant,
        correlation_id=cause.correlationid,
        causation_id=cause.id,
    )


_OFFERED = {"event_id": 1, "child_ref": 1, "provision_ids": 1}


async def _decisions_touching(
    runtime: Runtime, submissions: Sequence[ReferralSubmittedV1], *, session: Session
) -> tuple[dict[str, str], dict[str, frozenset[str]]]:
    """Of these submissions, the referrals decided before (id -> its decision's event id), and the
    provisions that have supported each of their children (pseudonymous reference, for continuity).

    One query on the child reference finds both, since a referral's decision carries its child's
    reference; only a submission without one needs a lookup by id. Which of the decisions' offers
    were accepted is one more lookup by id, made only when a child has earlier offers."""
    refs = list({data.child_ref for data in submissions if data.child_ref})
    without_ref = [data.referral_id for data in submissions if not data.child_ref]
    found = await find_by_ids(runtime.db[DECISIONS], without_ref, session=session, projection=_OFFERED)
    if refs:
        async for decision in runtime.db[DECISIONS].find(
            {"child_ref": {"$in": refs}}, _OFFERED, session=session
        ):
            found[decision["_id"]] = decision
    ids = {data.referral_id for data in submissions}
    earlier = {referral_id: doc["event_id"] for referral_id, doc in found.items() if referral_id in ids}
    return earlier, await _supported(runtime, found.values(), session=session)


async def _supported_before(runtime: Runtime, child_ref: str, *, session: Session) -> frozenset[str]:
    """The provisions that have supported this child, in any of its referrals."""
    if not child_ref:
        return frozenset()
    decisions = (
        await runtime.db[DECISIONS].find({"child_ref": child_ref}, _OFFERED, session=session).to_list()
    )
    return (await _supported(runtime, decisions, session=session)).get(child_ref, frozenset())


async def _supported(
    runtime: Runtime, decisions: Iterable[Document], *, session: Session
) -> dict[str, frozenset[str]]:
    """Per child reference, the provisions of these decisions that have supported the child: offers
    an agency accepted (started or completed since, or not). One only offered, or declined, has not,
    nor has one offered to a sibling submission in the same batch (no decision of it is stored yet)."""
    offered = {
        (doc["_id"], provision_id): doc["child_ref"]
        for doc in decisions
        if doc.get("child_ref")
        for provision_id in doc.get("provision_ids", [])
    }
    supported: dict[str, set[str]] = {}
    for referral_id, provision_id in await accepted_offers(runtime, offered, session=session):
        supported.setdefault(offered[referral_id, provision_id], set()).add(provision_id)
    return {child_ref: frozenset(ids) for child_ref, ids in supported.items()}


async def get_decision(*, runtime: Runtime, referral_id: str) -> Document | None:
    """This area's decision for the referral. A database holds one area's decisions (start-up
    refuses another area's, `signpost.shared.area`); the tenant in the filter is a second guard."""
    decision = await runtime.db[DECISIONS].find_one({"_id": referral_id})
    return decision if in_area(decision, runtime.settings.tenant) else None
