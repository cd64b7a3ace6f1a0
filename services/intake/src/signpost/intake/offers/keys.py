"""Each referral's inbox keys: `<organisation>|<status>` for each of its offers.

An agency's inbox polls `GET /v1/offers?status=...`; matching on the offers themselves read every
referral ever offered to the organisation. The keys sit beside the offers, written with them by
every change (`with_offer_keys`), so the poll reads one range of `{tenant, offer_keys, _id}`.
`signpost migrate` writes them on referrals stored before they existed or left stale by a rolling
upgrade (`backfill_offer_keys`); `signpost run`, as it starts, on those stored without any.
"""

from __future__ import annotations

from collections.abc import Iterable

from pymongo import UpdateOne
from signpost.intake.referrals.models import REFERRALS
from signpost.shared.mongo import Database, Document

BACKFILL_CHUNK = 500


def offer_key(organisation_id: str, status: str) -> str:
    return f"{organisation_id}|{status}"


def offer_keys(offers: Iterable[Document]) -> list[str]:
    return sorted({offer_key(offer["organisation_id"], offer["status"]) for offer in offers})


def with_offer_keys(changes: Document) -> Document:
    """`changes`, with the keys of its offers when it changes them."""
    return {**changes, "offer_keys": offer_keys(changes["offers"])} if "offers" in changes else changes


async def backfill_offer_keys(db: Database) -> int:
    """Write the keys of every referral whose keys are missing or disagree with its offers (an older
    release's pod changing offers during a rolling upgrade leaves them stale); returns how many it
    wrote. Reads every referral's offers, so it is `signpost migrate`'s."""
    return await _write_offer_keys(db, among={})


async def write_missing_offer_keys(db: Database) -> int:
    """Write the keys of the referrals stored without any, reading only those; returns how many it
    wrote. Enough where no older release runs beside this one (`signpost run` as it starts)."""
    return await _write_offer_keys(db, among={"offer_keys": {"$exists": False}})


async def _write_offer_keys(db: Database, *, among: Document) -> int:
    """Write the keys of the referrals matching `among` whose keys disagree with their offers (a
    chunk at a time, in id order). Running it again writes none. A referral whose offers change
    meanwhile is left to that change, which writes its own keys."""
    written = 0
    last_id = ""
    while batch := (
        await db[REFERRALS]
        .find({**among, "_id": {"$gt": last_id}}, {"offers": 1, "offer_keys": 1})
        .sort("_id", 1)
        .limit(BACKFILL_CHUNK)
        .to_list()
    ):
        last_id = batch[-1]["_id"]
        stale = [
            UpdateOne({"_id": referral["_id"], "offers": referral["offers"]}, {"$set": {"offer_keys": keys}})
            for referral in batch
            if (keys := offer_keys(referral["offers"])) != referral.get("offer_keys")
        ]
        if stale:
            written += (await db[REFERRALS].bulk_write(stale, ordered=False)).modified_count
    return written
