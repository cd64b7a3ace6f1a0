"""One local area per database: a service claims its database for its tenant as it starts.

Database names carry SIGNPOST_DATABASE_PREFIX and the service, not the tenant, so two areas
pointed at one MongoDB with the same prefix would share every collection, and queries that trust
the database to be one area's would read, change and erase the other area's records. The first
start (or `signpost migrate`) writes the owner document; every later start compares it, and one
for another area stops before touching anything. A database from before the claim has no owner
document and is claimed by the first start after the upgrade.
"""

from __future__ import annotations

from contextlib import suppress
from datetime import UTC, datetime

from pymongo.errors import DuplicateKeyError
from signpost.shared.mongo import Database

AREA = "area"
OWNER_ID = "owner"


class DatabaseOfAnotherArea(RuntimeError):
    """The database this service was pointed at belongs to another local area."""

    def __init__(self, *, database: str, owner: str | None, tenant: str) -> None:
        self.database, self.owner, self.tenant = database, owner, tenant
        super().__init__(
            f"MongoDB database {database!r} belongs to local area {owner!r}, not to this deployment's "
            f"SIGNPOST_TENANT {tenant!r}: two areas sharing databases would read, change and erase "
            "each other's records, so this service will not start. Give each area its own "
            "SIGNPOST_DATABASE_PREFIX (or its own MongoDB); if this deployment really serves "
            f"{owner!r}, set SIGNPOST_TENANT={owner}."
        )


async def claim_database(db: Database, *, tenant: str) -> None:
    """Claim `db` for `tenant` if no area has it yet; raise DatabaseOfAnotherArea if another has.

    Atomic: an upsert that only inserts, so of two starts at once (replicas, or two areas) the
    first writes the owner and the other reads it.
    """
    # A DuplicateKeyError: another start inserted it between this one's match and insert; read theirs.
    with suppress(DuplicateKeyError):
        await db[AREA].update_one(
            {"_id": OWNER_ID},
            {"$setOnInsert": {"tenant": tenant, "claimed_at": datetime.now(UTC)}},
            upsert=True,
        )
    owner = await db[AREA].find_one({"_id": OWNER_ID})
    claimed_by = owner.get("tenant") if owner else None
    if claimed_by != tenant:
        raise DatabaseOfAnotherArea(database=db.name, owner=claimed_by, tenant=tenant)
