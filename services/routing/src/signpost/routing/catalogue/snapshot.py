"""The Local Offer as one routing process matches against it, kept between referrals.

Building a `Catalogue` means reading every active provision; doing that per referral
costs more than matching. A process keeps its snapshot and, per referral, reads the
catalogue version (one document by id): unchanged, it matches at once; moved on, it
reads back only the provisions changed since (each stamped with the version of its last
change, in the same transaction as the change) and patches its snapshot. Any number of
routing processes stay correct this way, since each compares against the database.
"""

from __future__ import annotations

import asyncio

from signpost.routing.catalogue.repository import Version, changed_since, current_version, list_provisions
from signpost.routing.matching import Catalogue
from signpost.shared.mongo import Database


class CatalogueSnapshot:
    def __init__(self) -> None:
        self._catalogue: Catalogue | None = None
        self._version: Version | None = None
        self._refreshing = asyncio.Lock()

    async def current(self, db: Database) -> Catalogue:
        """The catalogue as of this call: every change committed before it is in."""
        known = self._version
        if self._catalogue is not None and known is not None and await current_version(db) == known:
            return self._catalogue
        async with self._refreshing:  # one refresh at a time; the others then find it done
            version = await current_version(db)
            known = self._version
            if self._catalogue is None or version is None or known is None or version.epoch != known.epoch:
                # First use, or a catalogue recreated under us: read it whole.
                self._catalogue = Catalogue(await list_provisions(db, active_only=True))
            elif version.number != known.number:
                self._catalogue = self._catalogue.with_changes(await changed_since(db, known.number))
            self._version = version
            return self._catalogue
