"""The catalogue in routing's database."""

from __future__ import annotations

from collections.abc import Iterable

from pymongo import UpdateOne
from signpost.routing.catalogue.models import PROVISIONS, Provision
from signpost.shared.mongo import Database, Document


def _to_document(provision: Provision) -> Document:
    document = provision.model_dump(mode="json")
    document["_id"] = document.pop("id")
    return document


def _from_document(document: Document) -> Provision:
    fields = {key: value for key, value in document.items() if key != "_id"}
    return Provision(id=document["_id"], **fields)


async def list_provisions(db: Database, *, active_only: bool = False) -> list[Provision]:
    query: Document = {"active": True} if active_only else {}
    return [_from_document(doc) async for doc in db[PROVISIONS].find(query).sort("_id")]


async def seed_if_empty(db: Database, provisions: Iterable[Provision]) -> int:
    """Insert the starter catalogue into an empty collection; never overwrites an area's own."""
    if await db[PROVISIONS].estimated_document_count() > 0:
        return 0
    operations = [
        UpdateOne({"_id": p.id}, {"$setOnInsert": _to_document(p)}, upsert=True) for p in provisions
    ]
    result = await db[PROVISIONS].bulk_write(operations)
    return result.upserted_count
