"""Projection sets: the collections one generation of projections lives in, and which is active.

A rebuild folds the retained log into a fresh set while the live consumer keeps the
active one current; the pointer document names the active set (and the one being
built, which the live consumer also writes to), so swapping is one atomic update.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from pymongo import IndexModel, ReturnDocument
from signpost.shared.mongo import Database, Document

POINTER_COLLECTION = "projection_sets"
POINTER_ID = "active"
INITIAL_SET = "live"


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

    def targets(self) -> list[ProjectionSet]:
        """Where live events go: the active set, and the one being rebuilt (folds are idempotent)."""
        return [self.active] if self.building is None else [self.active, self.building]


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
        {"$set": {"building": name, "building_since": datetime.now(UTC)}},
        return_document=ReturnDocument.AFTER,
    )
    if found is None:
        current = await read_pointer(db)
        assert current.building is not None
        raise RebuildInProgress(current.building.name)
    return _pointer(found)


async def swap_in(db: Database, name: str) -> str:
    """Make the rebuilt set active in one update; returns the set it replaced."""
    before = await db[POINTER_COLLECTION].find_one_and_update(
        {"_id": POINTER_ID, "building": name},
        {"$set": {"active": name, "building": None, "swapped_at": datetime.now(UTC)}},
    )
    if before is None:
        raise RebuildInProgress(name)  # someone else changed the pointer meanwhile
    previous: str = before["active"]
    return previous


async def abandon(db: Database, name: str) -> None:
    await db[POINTER_COLLECTION].update_one(
        {"_id": POINTER_ID, "building": name}, {"$set": {"building": None}}
    )


class RebuildInProgress(RuntimeError):
    def __init__(self, name: str) -> None:
        super().__init__(f"projection set {name!r} is being rebuilt already")
        self.name = name


def _pointer(found: Document | None) -> Pointer:
    if found is None:
        return Pointer(active=ProjectionSet(INITIAL_SET), building=None)
    building = found.get("building")
    return Pointer(
        active=ProjectionSet(found["active"]),
        building=ProjectionSet(building) if building else None,
    )
