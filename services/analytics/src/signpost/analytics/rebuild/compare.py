"""Compare two projection sets document by document: what a rebuild proves about the live one.

A rebuild compares its set with the active one just before swapping, while the live
consumer still folds every new event into both; a batch landing in one set and not yet
in the other looks like a difference, so a comparison that differs is taken again.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from dataclasses import dataclass

from signpost.analytics.projections.fold import BOOKKEEPING
from signpost.analytics.projections.sets import ProjectionSet
from signpost.shared.mongo import Database, Document

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
    """Every collection of `rebuilt` against the same kind in `replaced`; retried while they differ."""
    for attempt in range(1, ATTEMPTS + 1):
        comparison = await _compare_once(db, rebuilt, replaced)
        if comparison.identical or attempt == ATTEMPTS:
            return comparison
        await asyncio.sleep(PAUSE_S)
    raise AssertionError("unreachable")


async def _compare_once(db: Database, rebuilt: ProjectionSet, replaced: ProjectionSet) -> Comparison:
    documents = 0
    differences = []
    for new, old in zip(rebuilt.collections(), replaced.collections(), strict=True):
        ours, theirs = await _digests(db, new), await _digests(db, old)
        documents += len(ours)
        differing = sorted(key for key in ours.keys() & theirs.keys() if ours[key] != theirs[key])
        only_rebuilt = sorted(ours.keys() - theirs.keys())
        only_replaced = sorted(theirs.keys() - ours.keys())
        if differing or only_rebuilt or only_replaced:
            differences.append(
                CollectionDifference(
                    collection=new.removeprefix(f"{rebuilt.name}_"),
                    only_rebuilt=len(only_rebuilt),
                    only_replaced=len(only_replaced),
                    differing=len(differing),
                    examples=(differing + only_rebuilt + only_replaced)[:EXAMPLES],
                )
            )
    return Comparison(documents=documents, differences=differences)


async def _digests(db: Database, collection: str) -> dict[str, bytes]:
    """`_id` -> a digest of the document's content (`comparable`)."""
    digests = {}
    async for found in db[collection].find():
        document = comparable(found)
        content = json.dumps(document, sort_keys=True, default=str).encode()
        digests[str(document["_id"])] = hashlib.blake2b(content, digest_size=16).digest()
    return digests


def comparable(document: Document) -> Document:
    """A projection document's content. Field order is not content, nor is the bookkeeping of
    writes (a live fact is rewritten more often than a replayed one), nor the order of a fact's
    `events` (the ids already folded, kept in arrival order: the live consumer and a replay see a
    referral's events from several topics in different orders)."""
    content = {key: value for key, value in document.items() if key not in BOOKKEEPING}
    if isinstance(content.get("events"), list):
        content["events"] = sorted(content["events"])
    return content
