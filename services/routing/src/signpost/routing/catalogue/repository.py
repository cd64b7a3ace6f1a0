"""The catalogue in routing's database."""

from __future__ import annotations

import re
from collections.abc import Iterable

from pymongo import UpdateOne
from signpost.routing.catalogue.models import PROVISIONS, WHOLE_AREA, Provision
from signpost.shared.mongo import Database, Document
from signpost.shared.vocabulary import BROAD_AREA_OF, NeedCode, Sector


def to_document(provision: Provision) -> Document:
    document = provision.model_dump(mode="json")
    document["_id"] = document.pop("id")
    return document


def from_document(document: Document) -> Provision:
    fields = {key: value for key, value in document.items() if key in Provision.model_fields}
    return Provision(id=document["_id"], **fields)


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
    operations = [UpdateOne({"_id": p.id}, {"$setOnInsert": to_document(p)}, upsert=True) for p in provisions]
    result = await db[PROVISIONS].bulk_write(operations)
    return result.upserted_count
