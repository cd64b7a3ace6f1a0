"""Who writes projection facts, so that a process reads the change stream only while another one does.

Every process that writes facts (each analytics replica's consumer, a rebuild) holds a lease: a
document in `projection_writers` saying until when it may write, renewed before it folds a batch
whenever less than `margin_s` of it is left. A follower reads its change stream only while another
process's lease is current (follower.py); alone, it pauses the stream where it is — never skipping
it — so when another writer appears it resumes from there and misses nothing that writer wrote. A
single replica thus pays nothing for the stream, which cost a pure-Python MongoDB 7% of its CPU
while folding 1M events (bench/analytics.py) and woke for every commit of any service.

A batch is folded, and then committed, only after making sure at least `margin_s` of the lease is
left (renewing it if not), so every write lands while the lease is current for the other processes,
and stays so for a while after (a clean stop lets the lease lapse after the margin rather than
deleting it, so this holds for its last writes too), as long as the hosts' clocks differ by less
than a quarter of the margin (NTP keeps them within milliseconds).

The same leases tell a writer when it is the only one: each batch looks at them in its transaction,
and the follower every second. Alone since before it cached its copies, and looking again within a
quarter of the margin each time (so no other writer's lease can have come and lapsed unseen), a writer
replaces its facts by `_id` alone; otherwise each replacement is conditional on the version it read
(fold.py), which a pure-Python MongoDB plans far more slowly.
"""

from __future__ import annotations

import secrets
import time
from datetime import UTC, datetime, timedelta

from signpost.shared.mongo import Database, Session

WRITERS_COLLECTION = "projection_writers"
LEASE_S = 60.0
MARGIN_S = 30.0
FORGOTTEN_AFTER = timedelta(days=1)  # leases lapsed this long ago are deleted when a writer starts


class WriterLease:
    def __init__(self, db: Database, *, lease_s: float = LEASE_S, margin_s: float = MARGIN_S) -> None:
        if not 0 < margin_s < lease_s:
            raise ValueError("the margin must be positive and shorter than the lease")
        # Also written into every fact this process folds: its own change stream leaves those out.
        self.writer = secrets.token_hex(8)
        self._db = db
        self._lease_s, self._margin_s = lease_s, margin_s
        self._until = 0.0  # time.monotonic() at which the lease lapses
        self._registered = False
        self._looked = float("-inf")  # when the leases were last looked at
        self._alone_since: float | None = None  # no other writer seen since then, looking often enough

    async def look(self, *, session: Session | None = None) -> bool:
        """Does another process hold a current lease? (In `session`: as of its transaction's snapshot.)"""
        began = time.monotonic()
        others = await others_writing(self._db, self.writer, session=session)
        if others or began - self._looked > self._margin_s / 4:
            self._alone_since = None  # another writer, or one could have come and gone unseen
        if not others and self._alone_since is None:
            self._alone_since = time.monotonic()
        self._looked = time.monotonic()
        return others

    def alone_since(self, moment: float) -> bool:
        """Has no other process written since `moment` (time.monotonic()), as far as the last look tells?"""
        return self._alone_since is not None and self._alone_since <= moment

    async def ensure(self) -> None:
        """Renew the lease unless at least the margin is left: call before folding a batch and before
        committing it (outside its transaction, so the renewal is seen at once)."""
        if self._until - time.monotonic() < self._margin_s:
            await self.renew()

    async def renew(self) -> None:
        began, now = time.monotonic(), datetime.now(UTC)
        writers = self._db[WRITERS_COLLECTION]
        if not self._registered:
            await writers.delete_many({"expires_at": {"$lt": now - FORGOTTEN_AFTER}})
        await writers.update_one(
            {"_id": self.writer},
            {"$set": {"expires_at": now + timedelta(seconds=self._lease_s)}},
            upsert=True,
        )
        self._until, self._registered = began + self._lease_s, True

    async def release(self) -> None:
        """On a clean stop: the lease lapses `margin_s` from now, or sooner if it would anyway.

        Not deleted: the followers read this writer's last commits from their change streams only while
        its lease is current (follower.py), and one that had not read that far, or had not yet seen the
        lease at all, would stop reading short of them. Lapsing after the margin keeps the guarantee
        every commit has (it lands with at least the margin left), without a follower needing to know
        how far its stream has got."""
        self._until = 0.0
        lapses = datetime.now(UTC) + timedelta(seconds=self._margin_s)
        await self._db[WRITERS_COLLECTION].update_one({"_id": self.writer}, {"$min": {"expires_at": lapses}})


async def others_writing(db: Database, writer: str, *, session: Session | None = None) -> bool:
    """Does a process other than `writer` hold a current lease?"""
    found = await db[WRITERS_COLLECTION].find_one(
        {"_id": {"$ne": writer}, "expires_at": {"$gt": datetime.now(UTC)}}, {"_id": 1}, session=session
    )
    return found is not None
