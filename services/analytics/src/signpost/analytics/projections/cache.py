"""The projection documents this process wrote last, so the next batch need not read them back.

Reading a fact costs a pure-Python MongoDB about as much as writing it, and a live batch
touches hundreds of facts. The copies are only a hint: every write is conditional on the
version it was read at (fold.py), so a copy another writer made stale (a rebuild filling the
same set, another replica after a rebalance) fails its batch, which is folded again from
MongoDB. Bounded, least recently written first out.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Iterable

from signpost.shared.mongo import Document


class WriteCache:
    def __init__(self, *, size: int) -> None:
        self._size = size
        self._documents: OrderedDict[tuple[str, str], Document] = OrderedDict()
        self.since: float | None = None  # time.monotonic() of the first copy kept since the last clear

    def get_many(self, collection: str, ids: Iterable[str]) -> dict[str, Document]:
        found = {}
        for key in ids:
            document = self._documents.get((collection, key))
            if document is not None:
                found[key] = document
        return found

    def put_many(self, collection: str, documents: Iterable[Document]) -> None:
        """Committed documents, which no one may change afterwards (they are shared, not copied)."""
        if self.since is None:
            self.since = time.monotonic()
        for document in documents:
            key = (collection, document["_id"])
            self._documents[key] = document
            self._documents.move_to_end(key)
        while len(self._documents) > self._size:
            self._documents.popitem(last=False)

    def clear(self) -> None:
        self._documents.clear()
        self.since = None
