"""Routing's database as the service leaves it at start-up, for tests that call its handlers directly."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager

from signpost.routing.app import INDEXES
from signpost.routing.catalogue.models import Provision
from signpost.routing.catalogue.repository import ensure_version, seed_if_empty
from signpost.shared.service import Runtime
from signpost.shared.settings import Settings


@asynccontextmanager
async def routing_runtime(settings: Settings, catalogue: Iterable[Provision]) -> AsyncIterator[Runtime]:
    runtime = Runtime.build(settings, "routing")
    runtime.enable_outbox()  # transactions stage events for it; nothing relays them here
    await INDEXES.apply(runtime.db)
    await ensure_version(runtime.db)
    await seed_if_empty(runtime.db, catalogue)
    try:
        yield runtime
    finally:
        await runtime.client.close()
