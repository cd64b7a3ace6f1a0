"""Fold a batch of events into a projection set, in one MongoDB transaction.

Per batch: read the facts the batch touches in one query, fold every event into
them in memory (skipping event ids a fact already holds), work out the re-referral
flags of the children involved, then write facts, children and the bucket
increments with a few bulk writes. The idempotency record of each referral event
is its id in the fact, written in the same transaction as the counts it moved.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from pymongo import ReplaceOne
from pymongo.asynchronous.mongo_client import AsyncMongoClient
from signpost.analytics.projections.cells import (
    TOTALS,
    Cells,
    accumulate,
    changes,
    escape_key,
    rereferrals,
    totals_id,
    with_months,
)
from signpost.analytics.projections.facts import REFERRAL_EVENTS, apply_event, fact_id, stored_moment
from signpost.analytics.projections.sets import ProjectionSet, find_by_ids
from signpost.shared.events import Envelope, EventData, ProvisionChangedV1, SettingChangedV1
from signpost.shared.mongo import Database, Document, Session, in_transaction


async def fold_batch(
    client: AsyncMongoClient[Document],
    db: Database,
    *,
    target: ProjectionSet,
    envelopes: Sequence[Envelope[EventData]],
) -> int:
    """Fold `envelopes` into `target`; returns how many changed something (redeliveries do not)."""

    async def write(session: Session) -> int:
        return await _fold(db, target=target, envelopes=envelopes, session=session)

    return await in_transaction(client, write)


async def _fold(
    db: Database, *, target: ProjectionSet, envelopes: Sequence[Envelope[EventData]], session: Session
) -> int:
    referral_events = [e for e in envelopes if isinstance(e.data, REFERRAL_EVENTS)]
    ids = list({fact_id(e.tenant, e.data.referral_id) for e in referral_events})  # type: ignore[attr-defined]
    stored = await _find_many(db[target.facts], ids, session=session)
    current: dict[str, Document] = dict(stored)
    changed: set[str] = set()
    for envelope in referral_events:
        key = fact_id(envelope.tenant, envelope.data.referral_id)  # type: ignore[attr-defined]
        after = apply_event(current.get(key), envelope)
        if after is not None:
            current[key] = after
            changed.add(key)
    await _flag_rereferrals(
        db, target=target, stored=stored, current=current, changed=changed, session=session
    )

    increments: Cells = {}
    for key in changed:
        accumulate(increments, changes(stored.get(key), current[key]))
    await _save(
        db[target.facts], {key: current[key] for key in changed}, existing=stored.keys(), session=session
    )
    await _add_to_buckets(db, target=target, increments=with_months(increments), session=session)
    catalogue = await _fold_catalogue(db, target=target, envelopes=envelopes, session=session)
    tenants = {envelope.tenant for envelope in envelopes}
    known = await _find_many(db[target.tenants], list(tenants), session=session)
    await _save(
        db[target.tenants], {t: {"_id": t} for t in tenants - known.keys()}, existing=(), session=session
    )
    return len(changed) + catalogue


async def _add_to_buckets(
    db: Database, *, target: ProjectionSet, increments: Cells, session: Session
) -> None:
    """Read-modify-write: SecantusDB applies a many-path $inc slowly, whole documents quickly.

    Two writers changing one bucket concurrently conflict at commit, and the driver
    retries the losing transaction, which re-reads the bucket.
    """
    found = await _find_many(db[target.buckets], list(increments), session=session)
    updated: dict[str, Document] = {}
    for bucket, cells in increments.items():
        document = found.get(bucket) or _new_bucket(bucket)
        for cell, values in cells.items():
            if cell == TOTALS:
                _add_counters(document["m"], values)
                continue
            groups = document.setdefault("g", {}).setdefault(cell[0], {})
            key = escape_key(cell[1])
            counters = groups.setdefault(key, {})
            _add_counters(counters, values)
            if not counters:
                del groups[key]  # a group can empty out when a referral moves between cells
        updated[bucket] = document
    await _save(db[target.buckets], updated, existing=found.keys(), session=session)
    # A copy of each bucket's totals alone: summaries and trends read these small documents,
    # since SecantusDB reads a whole document even when asked for one field of it.
    await _save(
        db[target.buckets],
        {totals_id(bucket): _totals(bucket, document) for bucket, document in updated.items()},
        existing={totals_id(bucket) for bucket in found},
        session=session,
    )


def _totals(bucket: str, document: Document) -> Document:
    """The totals, plus what coverage and unmet demand need from the breakdowns, in a small document."""
    groups = document.get("g", {})
    return {
        "_id": totals_id(bucket),
        "m": document["m"],
        "referring": sorted(groups.get("setting", {})),
        "unmatched": {
            locality: counters["unmatched"]
            for locality, counters in groups.get("locality", {}).items()
            if counters.get("unmatched")
        },
    }


def _new_bucket(bucket: str) -> Document:
    tenant, grain, period, dimension, value = bucket.split("|")
    return {
        "_id": bucket,
        "tenant": tenant,
        "grain": grain,
        "period": period,
        "slice": [dimension, value],
        "m": {},
    }


def _add_counters(counters: dict[str, int], values: dict[str, int]) -> None:
    for name, value in values.items():
        total = counters.get(name, 0) + value
        if total:
            counters[name] = total
        else:
            counters.pop(name, None)


async def _find_many(collection: Any, ids: list[str], *, session: Session) -> dict[str, Document]:
    return {document["_id"]: document async for document in find_by_ids(collection, ids, session=session)}


async def _save(
    collection: Any, documents: dict[str, Document], *, existing: Collection[str], session: Session
) -> None:
    """Replace the documents that exist, insert the rest in one insert_many (upserts are slower)."""
    replacements = [ReplaceOne({"_id": key}, doc) for key, doc in documents.items() if key in existing]
    inserts = [doc for key, doc in documents.items() if key not in existing]
    if replacements:
        await collection.bulk_write(replacements, ordered=False, session=session)
    if inserts:
        await collection.insert_many(inserts, ordered=False, session=session)


async def _flag_rereferrals(
    db: Database,
    *,
    target: ProjectionSet,
    stored: dict[str, Document],
    current: dict[str, Document],
    changed: set[str],
    session: Session,
) -> None:
    """Record newly submitted referrals against their child, and re-flag that child's referrals."""
    arrivals: dict[str, list[tuple[datetime, str]]] = {}
    for key in changed:
        before, after = stored.get(key), current[key]
        submitted = after["submitted"]
        if submitted is None or not submitted["child_ref"] or (before and before["submitted"]):
            continue
        child = f"{after['tenant']}|{submitted['child_ref']}"
        arrivals.setdefault(child, []).append((submitted["at"], after["referral_id"]))
    if not arrivals:
        return
    children = await _find_many(db[target.children], list(arrivals), session=session)
    flags: dict[str, bool] = {}
    writes: dict[str, Document] = {}
    for child, new in arrivals.items():
        known = [
            (entry["at"], entry["referral_id"]) for entry in children.get(child, {}).get("referrals", [])
        ]
        every = sorted({*known, *new})
        tenant = child.split("|", 1)[0]
        flags.update({fact_id(tenant, rid): flag for rid, flag in rereferrals(every).items()})
        writes[child] = {"_id": child, "referrals": [{"at": at, "referral_id": rid} for at, rid in every]}
    await _save(db[target.children], writes, existing=children.keys(), session=session)
    missing = [key for key in flags if key not in current]
    for loaded in (await _find_many(db[target.facts], missing, session=session)).values():
        stored[loaded["_id"]] = current[loaded["_id"]] = loaded
    for key, flag in flags.items():
        fact = current.get(key)
        if fact is None or fact["rereferral"] == flag:
            continue
        if fact is stored.get(key):  # unchanged so far: keep the stored one as the "before"
            current[key] = {**fact, "rereferral": flag}
        else:
            fact["rereferral"] = flag
        changed.add(key)


async def _fold_catalogue(
    db: Database, *, target: ProjectionSet, envelopes: Sequence[Envelope[EventData]], session: Session
) -> int:
    """Provisions and settings: the newest state of each wins, so replays and reordering change nothing."""
    latest: dict[tuple[str, str], tuple[datetime, Document]] = {}
    for envelope in envelopes:
        data = envelope.data
        if isinstance(data, ProvisionChangedV1):
            document = {
                "tenant": envelope.tenant,
                "name": str(data.provision.get("name", data.provision_id)),
                "sector": data.provision.get("sector"),
                "organisation": data.provision.get("organisation"),
                "waiting_weeks": data.provision.get("waiting_weeks"),
                "active": data.change != "retired" and bool(data.provision.get("active", True)),
            }
            entry = (target.provisions, f"{envelope.tenant}|{data.provision_id}")
            stamp = stored_moment(data.changed_at)
        elif isinstance(data, SettingChangedV1):
            document = {
                "tenant": envelope.tenant,
                "setting_id": data.setting_id,
                "name": data.name,
                "locality": data.locality,
                "phase": data.phase,
                "open": data.change != "closed",
            }
            entry = (target.settings_register, f"{envelope.tenant}|{data.setting_id}")
            stamp = stored_moment(data.changed_at)
        else:
            continue
        if entry not in latest or latest[entry][0] <= stamp:
            latest[entry] = (stamp, {**document, "changed_at": stamp})
    for (collection, key), (stamp, document) in latest.items():
        existing = await db[collection].find_one({"_id": key}, {"changed_at": 1}, session=session)
        if existing is None or existing["changed_at"] <= stamp:
            await db[collection].replace_one({"_id": key}, document, upsert=True, session=session)
    return len(latest)
