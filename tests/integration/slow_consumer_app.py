"""A service whose event handler waits for the test's go-ahead: for the graceful-shutdown test.

Run by uvicorn in a child process (as `signpost run --service` runs a real service),
so the test can send it a real SIGTERM while the handler is in flight.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from fastapi import FastAPI
from signpost.shared.events import Envelope, EventData, new_event
from signpost.shared.mongo import IndexPlan, Session, in_transaction
from signpost.shared.outbox import stage_event
from signpost.shared.service import Runtime, create_service_app
from signpost.shared.settings import Settings

HANDLED = "handled"


def create_app() -> FastAPI:
    signals = Path(os.environ["SLOW_HANDLER_DIR"])
    runtime = Runtime.build(Settings(), "routing")
    runtime.enable_outbox()

    async def handle(*, runtime: Runtime, envelope: Envelope[EventData]) -> None:
        (signals / "started").touch()
        while not (signals / "release").exists():  # noqa: ASYNC110 (another process says when)
            await asyncio.sleep(0.05)

        async def record(session: Session) -> None:
            await runtime.db[HANDLED].insert_one({"_id": envelope.id}, session=session)
            follow_up = new_event(envelope.data, source="/tests/slow", tenant=envelope.tenant)
            await stage_event(
                runtime.db, topic=runtime.topics.provisions, envelope=follow_up, session=session
            )

        # Deliberately no events_committed(): only the shutdown flush can publish the staged event.
        await in_transaction(runtime.client, record)

    runtime.consume_events(handle)
    return create_service_app(
        runtime, title="slow consumer", description="test double", routers=[], indexes=IndexPlan()
    )
