"""Stopping a service's background work never hangs on a task that swallowed its cancellation."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from signpost.shared import service
from signpost.shared.service import cancel_until_done


async def swallows_one_cancellation(started: asyncio.Event) -> None:
    """As a library that catches CancelledError mid-call does: the loop goes round and waits again."""
    started.set()
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.Event().wait()
    await asyncio.Event().wait()  # a second cancellation ends it


async def fails_as_it_stops(started: asyncio.Event) -> None:
    started.set()
    try:
        await asyncio.Event().wait()
    except asyncio.CancelledError:
        raise RuntimeError("could not close its connection") from None


async def test_a_task_that_swallowed_its_cancellation_is_cancelled_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(service, "CANCEL_AGAIN_S", 0.05)
    started = [asyncio.Event(), asyncio.Event()]
    tasks = [
        asyncio.create_task(swallows_one_cancellation(started[0])),
        asyncio.create_task(fails_as_it_stops(started[1])),
    ]
    for event in started:
        await event.wait()
    async with asyncio.timeout(5):  # the old stop awaited the first task for good
        await cancel_until_done(tasks)
    assert tasks[0].cancelled()
    assert isinstance(tasks[1].exception(), RuntimeError)  # logged, not raised: the shutdown goes on
