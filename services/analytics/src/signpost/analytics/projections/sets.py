"""Projection sets: the collections one generation of projections lives in, and which is active.

A rebuild folds the retained log into a fresh set while the live consumer keeps the
active one current; the pointer document names the active set (and the one being
built), so swapping is one atomic update.

A referral's fact is folded in the order its events are on the log (facts.py), so a set
being built must never take a live event before the replay has reached that event's place
in the log. While it is being built, the set records how far into each partition of an
ordered topic it has been folded (`projection_positions`), in the same transaction as what
it folded: the replay alone fills it until it has caught up with the log (`hand_over`),
and from then on the live consumer folds into it too, but only a partition's records that
follow on from where the set has got (`Spans`); a live batch from further on waits until
the replay has got there.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from pymongo import IndexModel, ReturnDocument, UpdateOne
from signpost.shared.mongo import Database, Document, Session

POINTER_COLLECTION = "projection_sets"
POINTER_ID = "active"
INITIAL_SET = "live"
POSITIONS_COLLECTION = "projection_positions"


@dataclass(frozen=True)
class ProjectionSet:
    name: str

    @property
    def facts(self) -> str:
        """One document per referral: what its events said, and the ids of those events."""
        return f"{self.name}_referral_facts"

    @property
    def provisions(self) -> str:
        """The latest state of each Local Offer provision, for names and sectors."""
        return f"{self.name}_provisions"

    @property
    def settings_register(self) -> str:
        """The latest state of each registered setting, for coverage."""
        return f"{self.name}_settings_register"

    @property
    def tenants(self) -> str:
        """Every local area seen, for regional benchmarking."""
        return f"{self.name}_tenants"

    def collections(self) -> list[str]:
        return [
            self.facts,
            self.provisions,
            self.settings_register,
            self.tenants,
        ]

    def obsolete_collections(self) -> list[str]:
        """What this set held under earlier generations of the projections and no longer does."""
        return [f"{self.name}_{kind}" for kind in OBSOLETE_KINDS]


# Collection kinds a projection set held before the projections were rebuilt around the
# facts: pre-aggregated period buckets, and per-child submission times for re-referrals.
# Nothing reads or writes them now; `drop_obsolete` removes them from old deployments.
OBSOLETE_KINDS = ("buckets", "children")


def owner(collection: str) -> str | None:
    """The projection set a collection belongs to, by a current or an obsolete kind; None for
    any other collection (the pointer, say)."""
    name, _, kind = collection.partition("_")
    current = {full.removeprefix("x_") for full in ProjectionSet("x").collections()}
    return name if name and (kind in current or kind in OBSOLETE_KINDS) else None


def is_obsolete(collection: str) -> bool:
    return owner(collection) is not None and collection.partition("_")[2] in OBSOLETE_KINDS


async def drop_obsolete(db: Database) -> list[str]:
    """Drop every projection set's collections of an obsolete kind; returns their names, sorted."""
    dropped = sorted(filter(is_obsolete, await db.list_collection_names()))
    for collection in dropped:
        await db.drop_collection(collection)
    return dropped


async def create_indexes(db: Database, target: ProjectionSet) -> None:
    """The fold reads facts by `_id`, and the index loads facts whole, so only
    the coverage register's query needs one (each index is a cost on every insert)."""
    await db[target.settings_register].create_indexes(
        [IndexModel([("tenant", 1), ("open", 1), ("locality", 1)])]
    )


@dataclass(frozen=True)
class Pointer:
    active: ProjectionSet
    building: ProjectionSet | None
    # The set being built has caught up with the log: the live consumer folds into it too, in order.
    caught_up: bool = False

    def targets(self) -> list[ProjectionSet]:
        """Where live events go: the active set, and the one being rebuilt once its replay has caught
        up with the log (`hand_over`); before, folding a live event into it would put it ahead of the
        referral's earlier events that the replay has yet to reach."""
        return [self.active, self.building] if self.building is not None and self.caught_up else [self.active]

    def in_use(self) -> list[ProjectionSet]:
        """The active set, and the one being rebuilt (followed, so a swap finds its index loaded)."""
        return [self.active] if self.building is None else [self.active, self.building]

    def in_order(self, target: ProjectionSet) -> bool:
        """Must live events go into `target` only in log order, after what the replay folded (`Spans`)?"""
        return target == self.building


async def read_pointer(db: Database) -> Pointer:
    found = await db[POINTER_COLLECTION].find_one({"_id": POINTER_ID})
    return _pointer(found)


async def start_building(db: Database, name: str) -> Pointer:
    """Name the set a rebuild is filling; refused while another rebuild is under way."""
    await db[POINTER_COLLECTION].update_one(
        {"_id": POINTER_ID}, {"$setOnInsert": {"active": INITIAL_SET, "building": None}}, upsert=True
    )
    found = await db[POINTER_COLLECTION].find_one_and_update(
        {"_id": POINTER_ID, "building": None},
        {"$set": {"building": name, "building_since": datetime.now(UTC), "building_caught_up": False}},
        return_document=ReturnDocument.AFTER,
    )
    if found is None:
        current = await db[POINTER_COLLECTION].find_one({"_id": POINTER_ID})
        assert current is not None and current["building"] is not None
        raise RebuildInProgress(current["building"], since=current.get("building_since"))
    return _pointer(found)


async def hand_over(db: Database, name: str) -> None:
    """The set being built has caught up with the log: from its next batch on, the live consumer
    folds into it too, each partition of an ordered topic from where the set has got (`Spans`)."""
    result = await db[POINTER_COLLECTION].update_one(
        {"_id": POINTER_ID, "building": name},
        {"$set": {"building_caught_up": True, "caught_up_at": datetime.now(UTC)}},
    )
    if result.matched_count != 1:
        raise RebuildAbandoned(name)


async def swap_in(db: Database, name: str) -> str:
    """Make the rebuilt set active in one update; returns the set it replaced."""
    before = await db[POINTER_COLLECTION].find_one_and_update(
        {"_id": POINTER_ID, "building": name},
        {
            "$set": {
                "active": name,
                "building": None,
                "building_caught_up": False,
                "swapped_at": datetime.now(UTC),
            }
        },
    )
    if before is None:
        raise RebuildAbandoned(name)  # given up meanwhile (and perhaps another rebuild begun)
    previous: str = before["active"]
    return previous


async def abandon(db: Database, name: str) -> bool:
    """Stop building `name` (if it still is): nothing folds into it any more, and it is never swapped in."""
    result = await db[POINTER_COLLECTION].update_one(
        {"_id": POINTER_ID, "building": name}, {"$set": {"building": None, "building_caught_up": False}}
    )
    return result.modified_count == 1


# Partition -> (where the records of a batch start, the position just after its last record).
# The records are every record of the partition in between: a consumer returns a partition's
# records one after the other, from the position it reads at.
Spans = Mapping[tuple[str, int], tuple[int, int]]


def _position_id(target: ProjectionSet, partition: tuple[str, int]) -> str:
    topic, number = partition
    return f"{target.name}|{topic}|{number}"


async def start_positions(db: Database, target: ProjectionSet, starts: Mapping[tuple[str, int], int]) -> None:
    """Before a replay: `target` holds nothing of these partitions yet, whose logs start at `starts`."""
    await db[POSITIONS_COLLECTION].delete_many({"set": target.name})
    if starts:
        await db[POSITIONS_COLLECTION].insert_many(
            [
                {"_id": _position_id(target, partition), "set": target.name, "next": start}
                for partition, start in starts.items()
            ]
        )


async def positions_behind(
    db: Database, target: ProjectionSet, spans: Spans, *, session: Session | None = None
) -> list[tuple[str, int]]:
    """The partitions of `spans` whose records start beyond where `target` has been folded up to:
    folding them now would leave out the records in between (or fold them out of order)."""
    ids = {_position_id(target, partition): partition for partition in spans}
    found = {
        document["_id"]: int(document["next"])
        async for document in db[POSITIONS_COLLECTION].find({"_id": {"$in": list(ids)}}, session=session)
    }
    return sorted(
        partition for key, partition in ids.items() if key not in found or spans[partition][0] > found[key]
    )


async def advance_positions(db: Database, target: ProjectionSet, spans: Spans, *, session: Session) -> None:
    """`target` now holds every record of `spans` (in the transaction that folded them)."""
    if spans:
        await db[POSITIONS_COLLECTION].bulk_write(
            [
                UpdateOne({"_id": _position_id(target, partition)}, {"$max": {"next": end}})
                for partition, (_, end) in spans.items()
            ],
            ordered=False,
            session=session,
        )


async def drop_positions(db: Database, name: str) -> None:
    await db[POSITIONS_COLLECTION].delete_many({"set": name})


class RebuildInProgress(RuntimeError):
    def __init__(self, name: str, *, since: datetime | None = None) -> None:
        started = f" (since {since:%Y-%m-%d %H:%M} UTC)" if since is not None else ""
        super().__init__(f"projection set {name!r} is being rebuilt already{started}")
        self.name = name


async def abandon_building(db: Database) -> str | None:
    """Give up the set being built, if any, whoever is building it: for a rebuild whose process
    died (killed, evicted), which no one else would give up. Returns its name."""
    found = await db[POINTER_COLLECTION].find_one_and_update(
        {"_id": POINTER_ID, "building": {"$ne": None}},
        {"$set": {"building": None, "building_caught_up": False}},
    )
    return None if found is None else str(found["building"])


class RebuildAbandoned(RuntimeError):
    def __init__(self, name: str) -> None:
        super().__init__(
            f"projection set {name!r} is no longer being built: abandoned meanwhile (by hand, or by a live "
            "consumer that waited too long for it to catch up; see its log)"
        )
        self.name = name


def _pointer(found: Document | None) -> Pointer:
    if found is None:
        return Pointer(active=ProjectionSet(INITIAL_SET), building=None)
    building = found.get("building")
    return Pointer(
        active=ProjectionSet(found["active"]),
        building=ProjectionSet(building) if building else None,
        caught_up=bool(building and found.get("building_caught_up", False)),
    )
