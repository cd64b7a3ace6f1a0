"""Compare two projection sets document by document: what a rebuild proves about the live one.

A rebuild compares its set with the active one just before swapping, while the live
consumer still folds every new event into both; a batch landing in one set and not yet
in the other looks like a difference. So the documents that differ are looked at again,
a second later, up to ATTEMPTS times in all, and only those that still differ stand: a full
comparison taken again would catch other referrals mid-batch under steady load (one rebuild
in twenty reported a few, in a demo run).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass

from signpost.analytics.projections.fold import BOOKKEEPING
from signpost.analytics.projections.sets import ProjectionSet
from signpost.shared.mongo import Database, Document, find_by_ids

ATTEMPTS = 3
PAUSE_S = 1.0
EXAMPLES = 3


@dataclass(frozen=True)
class CollectionDifference:
    collection: str  # the kind, e.g. "referral_facts"
    only_rebuilt: int
    only_replaced: int
    differing: int
    examples: list[str]  # a few `_id`s, to look at by hand

    def describe(self) -> str:
        parts = [
            f"{count} {what}"
            for count, what in (
                (self.differing, "differ"),
                (self.only_rebuilt, "only in the rebuilt set"),
                (self.only_replaced, "only in the active set"),
            )
            if count
        ]
        return f"{self.collection}: {', '.join(parts)} (e.g. {', '.join(self.examples)})"


@dataclass(frozen=True)
class Comparison:
    documents: int  # in the rebuilt set
    differences: list[CollectionDifference]

    @property
    def identical(self) -> bool:
        return not self.differences

    @property
    def only_in_active(self) -> int:
        """Documents the rebuilt set lacks: folded from events the log no longer holds."""
        return sum(difference.only_replaced for difference in self.differences)


async def compare_sets(db: Database, rebuilt: ProjectionSet, replaced: ProjectionSet) -> Comparison:
    """Every collection of `rebuilt` against the same kind in `replaced`; what differs is looked at
    again while it does."""
    documents = 0
    suspects: dict[tuple[str, str], _Apart] = {}
    for new, old in zip(rebuilt.collections(), replaced.collections(), strict=True):
        ours, theirs = await _digests(db, new), await _digests(db, old)
        documents += len(ours)
        suspects[new, old] = _Apart.of(ours, theirs)
    for _ in range(ATTEMPTS - 1):
        if not any(suspects.values()):
            break
        await asyncio.sleep(PAUSE_S)
        for (new, old), apart in suspects.items():
            if apart:
                ids = apart.ids()
                suspects[new, old] = _Apart.of(await _digests(db, new, ids), await _digests(db, old, ids))
    differences = [
        apart.difference(new.removeprefix(f"{rebuilt.name}_"))
        for (new, _), apart in suspects.items()
        if apart
    ]
    return Comparison(documents=documents, differences=differences)


@dataclass(frozen=True)
class _Apart:
    """The ids of one kind of projection document that differ between the two sets."""

    differing: list[str]
    only_rebuilt: list[str]
    only_replaced: list[str]

    @classmethod
    def of(cls, ours: dict[str, bytes], theirs: dict[str, bytes]) -> _Apart:
        return cls(
            differing=sorted(key for key in ours.keys() & theirs.keys() if ours[key] != theirs[key]),
            only_rebuilt=sorted(ours.keys() - theirs.keys()),
            only_replaced=sorted(theirs.keys() - ours.keys()),
        )

    def __bool__(self) -> bool:
        return bool(self.differing or self.only_rebuilt or self.only_replaced)

    def ids(self) -> list[str]:
        return self.differing + self.only_rebuilt + self.only_replaced

    def difference(self, collection: str) -> CollectionDifference:
        return CollectionDifference(
            collection=collection,
            only_rebuilt=len(self.only_rebuilt),
            only_replaced=len(self.only_replaced),
            differing=len(self.differing),
            examples=self.ids()[:EXAMPLES],
        )


async def _digests(db: Database, collection: str, ids: Sequence[str] | None = None) -> dict[str, bytes]:
    """`_id` -> a digest of the document's content (`comparable`): every document, or those `ids`."""
    if ids is not None:
        return {str(key): _digest(found) for key, found in (await find_by_ids(db[collection], ids)).items()}
    return {str(found["_id"]): _digest(found) async for found in db[collection].find()}


def _digest(found: Document) -> bytes:
    content = json.dumps(comparable(found), sort_keys=True, default=str).encode()
    return hashlib.blake2b(content, digest_size=16).digest()


def comparable(document: Document) -> Document:
    """A projection document's content. Field order is not content, nor is the bookkeeping of
    writes (a live fact is rewritten more often than a replayed one), nor the order of a fact's
    `events` (the ids already folded, kept in arrival order: the live consumer and a replay see a
    referral's events from several topics in different orders)."""
    content = {key: value for key, value in document.items() if key not in BOOKKEEPING}
    if isinstance(content.get("events"), list):
        content["events"] = sorted(content["events"])
    return content
