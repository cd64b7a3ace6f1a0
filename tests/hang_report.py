"""Before pytest-timeout stops a hung test, write what every asyncio task is awaiting.

pytest-timeout dumps each thread's stack; for an async test stuck on an await that shows only the
event loop idle in `select`, which does not say which await never ended. Shortly before the
timeout, this plugin asks the test's event loop for each task's chain of awaits and writes it to
stderr, where the test's report shows it.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Any

import pytest

LEAD_S = 15.0  # written this long before the timeout, with time to spare for the write itself


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Iterator[None]:
    timeout = _timeout_of(item)
    timer: threading.Timer | None = None
    if timeout > 2 * LEAD_S:
        timer = threading.Timer(
            timeout - LEAD_S, _ask_loop_for_tasks, args=(threading.get_ident(), item.nodeid)
        )
        timer.daemon = True
        timer.start()
    try:
        return (yield)
    finally:
        if timer is not None:
            timer.cancel()


def _timeout_of(item: pytest.Item) -> float:
    """The test's pytest-timeout: its marker's, else the ini file's (0: none)."""
    marker = item.get_closest_marker("timeout")
    if marker is not None and marker.args:
        return float(marker.args[0])
    return float(item.config.getini("timeout") or 0)


def _ask_loop_for_tasks(thread_id: int, nodeid: str) -> None:
    loop = _loop_running_in(thread_id)
    if loop is None:
        os.write(2, f"\n{nodeid} is about to time out; no event loop runs in its thread\n".encode())
        return
    # Run on the loop's own thread, between callbacks, where reading the tasks is safe.
    loop.call_soon_threadsafe(_write_tasks, loop, nodeid)


def _loop_running_in(thread_id: int) -> asyncio.AbstractEventLoop | None:
    frame: FrameType | None = sys._current_frames().get(thread_id)
    while frame is not None:
        candidate = frame.f_locals.get("self")
        if isinstance(candidate, asyncio.AbstractEventLoop):
            return candidate
        frame = frame.f_back
    return None


def _write_tasks(loop: asyncio.AbstractEventLoop, nodeid: str) -> None:
    tasks = asyncio.all_tasks(loop)
    lines = [f"\n{nodeid} is about to time out; its {len(tasks)} asyncio task(s) await:"]
    for task in tasks:
        lines.append(f"- task {task.get_name()}:")
        lines.extend(f"    {step}" for step in await_chain(task.get_coro()))
        # The future under the chain (the chain ends at its iterator, which does not name it).
        lines.append(f"    on {getattr(task, '_fut_waiter', None)!r}")
    os.write(2, ("\n".join(lines) + "\n").encode())


def await_chain(awaitable: Any) -> list[str]:
    """Where a suspended coroutine waits, outermost first (`Task.get_stack` gives a suspended
    coroutine's outermost frame only)."""
    steps: list[str] = []
    while awaitable is not None and len(steps) < 100:
        frame = getattr(awaitable, "cr_frame", None) or getattr(awaitable, "gi_frame", None)
        frame = frame or getattr(awaitable, "ag_frame", None)
        if frame is None:
            break
        steps.append(f"{frame.f_code.co_filename}:{frame.f_lineno} in {frame.f_code.co_name}")
        awaitable = (
            getattr(awaitable, "cr_await", None)
            or getattr(awaitable, "gi_yieldfrom", None)
            or getattr(awaitable, "ag_await", None)
        )
    return steps
