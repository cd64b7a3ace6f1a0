"""Keyset paging, newest first, for intake's lists: the cursor is the `_id` of the last item a
page showed. Ids are UUIDv7, so `_id` order is creation order and an index on the filter's
fields then `_id` serves every page, however deep."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query
from pydantic import BaseModel, Field
from signpost.shared.mongo import Collection, Document
from signpost.shared.text import in_words

# Only a cursor a page gave out: anything else is refused rather than read as a position.
CURSOR = r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$"
Cursor = Annotated[
    str | None,
    in_words(CURSOR, "the next_cursor an earlier page answered, as it was given"),
    Query(description="The `next_cursor` of the previous page.", json_schema_extra={"pattern": CURSOR}),
]


class Page(BaseModel):
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page.")


async def newest_first(
    collection: Collection, query: Document, *, limit: int, cursor: str | None
) -> tuple[list[Document], str | None]:
    """Up to `limit` documents matching `query` after `cursor`, and the cursor for the next page."""
    if cursor:
        query = {**query, "_id": {"$lt": cursor}}
    found = await collection.find(query).sort("_id", -1).limit(limit + 1).to_list()
    page = found[:limit]
    return page, (page[-1]["_id"] if len(found) > limit else None)
