"""Group commit: concurrent writes coalesced into one transaction, so one commit (one fsync) serves many.

Callers `await submit(item)`. One flusher at a time writes whatever has queued since the last
write (up to `max_batch`) with `write_batch`, which answers each item on its own: its result, or
the exception that item alone would raise (say a reused Idempotency-Key). While one group commits,
the next gathers, so the busier the service, the larger the groups; `linger_s` waits a moment
first so a lone request is joined by its near neighbours.

If the group's transaction fails for another reason than the database being away, each item is
written again on its own with `write_one`, so one bad document never fails its neighbours. While
the database is away every item gets that error, as it would alone.

At most `max_waiting` items wait for a write; beyond that `submit` refuses at once (`Overloaded`).
Past its capacity a service that queues everything answers everyone late: callers give up while
their work still waits, and the writes done for them crowd out the callers still waiting, until
almost nothing is answered in time. Refusing the excess keeps the rest fast.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from signpost.shared.errors import describe_error
from signpost.shared.logging import get_logger
from signpost.shared.retries import is_infrastructure_failure

log = get_logger(__name__)

T = TypeVar("T")
R = TypeVar("R")


class Overloaded(Exception):
    """Too many items already wait to be written: this one was not taken (nothing of it is stored)."""

    def __init__(self, waiting: int) -> None:
        super().__init__(f"{waiting} writes are already waiting")
        self.waiting = waiting


class GroupCommit(Generic[T, R]):
    def __init__(
        self,
        *,
        write_batch: Callable[[Sequence[T]], Awaitable[Sequence[R | Exception]]],
        write_one: Callable[[T], Awaitable[R]],
        max_batch: int,
        linger_s: float,
        max_waiting: int,
    ) -> None:
        if max_batch < 1 or linger_s < 0 or max_waiting < 1:
            raise ValueError("max_batch and max_waiting must be at least 1 and linger_s not negative")
        self._write_batch = write_batch
        self._write_one = write_one
        self._max_batch = max_batch
        self._linger_s = linger_s
        self._max_waiting = max_waiting
        self._queue: list[tuple[T, asyncio.Future[R]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def submit(self, item: T) -> R:
        if len(self._queue) >= self._max_waiting:
            raise Overloaded(len(self._queue))
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        if self._flusher is None or self._flusher.done():
            # One flusher per burst: it ends when the queue is empty, so nothing lingers at shutdown.
            self._flusher = asyncio.create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        if self._linger_s:
            await asyncio.sleep(self._linger_s)
        while self._queue:
            group = self._queue[: self._max_batch]
            del self._queue[: self._max_batch]
            await self._write(group)

    async def _write(self, group: list[tuple[T, asyncio.Future[R]]]) -> None:
        items = [item for item, _ in group]
        outcomes: Sequence[R | BaseException]
        try:
            outcomes = await self._write_batch(items) if len(items) > 1 else await self._alone(items[0])
        except Exception as exc:
            if is_infrastructure_failure(exc) or len(items) == 1:
                outcomes = [exc] * len(items)
            else:
                log.warning(
                    "group write failed; writing its items one by one",
                    items=len(items),
                    error=describe_error(exc),
                )
                outcomes = await asyncio.gather(
                    *(self._write_one(item) for item in items), return_exceptions=True
                )
        for (_, future), outcome in zip(group, outcomes, strict=True):
            if future.done():  # the caller went away (request cancelled)
                continue
            if isinstance(outcome, BaseException):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)

    async def _alone(self, item: T) -> list[R | Exception]:
        return [await self._write_one(item)]
