"""The catalogue in routing's database.

Every change to a provision also counts one more catalogue version (a single document,
changed in the same transaction) and stamps the provision with it, so a routing process
can tell with one read whether its snapshot is current, and read back only what changed.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from contextlib import suppress
from dataclasses import dataclass

from pymongo import ASCENDING, IndexModel, ReturnDocument, UpdateOne
from pymongo.errors import DuplicateKeyError
from signpost.routing.catalogue.models import PROVISIONS, WHOLE_AREA, Provision
from signpost.shared.mongo import Database, Document, Session, in_transaction
from signpost.shared.text import STORED
from signpost.shared.vocabulary import BROAD_AREA_OF, NeedCode, Sector

CATALOGUE_VERSION = "catalogue_version"
VERSION_ID = "provisions"
CHANGED_IN = "catalogue_version"  # on each provision: the version its last change made
CATALOGUE_VERSION_INDEX = IndexModel([(CHANGED_IN, ASCENDING)])


@dataclass(frozen=True)
class Version:
    """How far the catalogue has changed. A new `epoch` means it was recreated: read it whole."""

    epoch: str
    number: int


def to_document(provision: Provision) -> Document:
    document = provision.model_dump(mode="json")
    document["_id"] = document.pop("id")
    return document


def from_document(document: Document) -> Provision:
    fields = {key: value for key, value in document.items() if key in Provision.model_fields}
    return Provision.model_validate({**fields, "id": document["_id"]}, context=STORED)


async def list_provisions(db: Database, *, active_only: bool = False) -> list[Provision]:
    query: Document = {"active": True} if active_only else {}
    return [from_document(doc) async for doc in db[PROVISIONS].find(query).sort("_id")]


async def search_provisions(
    db: Database,
    *,
    need_code: NeedCode | None,
    sector: Sector | None,
    locality: str | None,
    active: bool | None,
    text: str | None,
    limit: int,
    offset: int,
) -> tuple[list[Provision], int]:
    query: Document = {}
    if need_code is not None:
        area = BROAD_AREA_OF[need_code]
        query["$or"] = [{"need_codes": need_code.value}, *([{"broad_areas": area.value}] if area else [])]
    if sector is not None:
        query["sector"] = sector.value
    if locality is not None:
        query["localities"] = {"$in": [locality, WHOLE_AREA]}
    if active is not None:
        query["active"] = active
    if text:
        query["name"] = {"$regex": re.escape(text), "$options": "i"}  # escaped: the text is matched literally
    total = await db[PROVISIONS].count_documents(query)
    found = db[PROVISIONS].find(query).sort("_id").skip(offset).limit(limit)
    return [from_document(doc) async for doc in found], total


async def seed_if_empty(db: Database, provisions: Iterable[Provision]) -> int:
    """Insert the starter catalogue into an empty collection; never overwrites an area's own."""
    if await db[PROVISIONS].estimated_document_count() > 0:
        return 0

    async def write(session: Session) -> int:
        version = await next_version(db, session=session)
        operations = [
            UpdateOne({"_id": p.id}, {"$setOnInsert": {**to_document(p), CHANGED_IN: version}}, upsert=True)
            for p in provisions
        ]
        result = await db[PROVISIONS].bulk_write(operations, session=session)
        return result.upserted_count

    return await in_transaction(db.client, write)


async def ensure_version(db: Database) -> None:
    """Create the version document before any change needs it (concurrent upserts are unreliable)."""
    with suppress(DuplicateKeyError):  # another routing process created it first
        await db[CATALOGUE_VERSION].update_one(
            {"_id": VERSION_ID}, {"$setOnInsert": {"epoch": _new_epoch(), "number": 0}}, upsert=True
        )


async def next_version(db: Database, *, session: Session) -> int:
    """Count one more catalogue change inside the caller's transaction; returns its number."""
    found = await db[CATALOGUE_VERSION].find_one_and_update(
        {"_id": VERSION_ID},
        {"$inc": {"number": 1}, "$setOnInsert": {"epoch": _new_epoch()}},
        upsert=True,
        return_document=ReturnDocument.AFTER,
        session=session,
    )
    if found is None:  # SecantusDB may answer None to an upsert: read what it wrote
        found = await db[CATALOGUE_VERSION].find_one({"_id": VERSION_ID}, session=session)
    assert found is not None, "the catalogue version was just written"
    return int(found["number"])


async def stamp_change(db: Database, *, provision_id: str, session: Session) -> int:
    """Mark a provision the caller's transaction has written as changed in a new version; returns it."""
    version = await next_version(db, session=session)
    await db[PROVISIONS].update_one({"_id": provision_id}, {"$set": {CHANGED_IN: version}}, session=session)
    return version


def changed_in(document: Document) -> int:
    """The catalogue version of a stored provision's last change (0: written before versions)."""
    return int(document.get(CHANGED_IN) or 0)


async def current_version(db: Database) -> Version | None:
    found = await db[CATALOGUE_VERSION].find_one({"_id": VERSION_ID})
    return None if found is None else Version(epoch=found["epoch"], number=int(found["number"]))


async def changed_since(db: Database, version: int) -> list[Provision]:
    """Provisions changed after `version`, retired ones included."""
    return [from_document(doc) async for doc in db[PROVISIONS].find({CHANGED_IN: {"$gt": version}})]


def _new_epoch() -> str:
    return uuid.uuid4().hex
