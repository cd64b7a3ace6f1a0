"""The hang report names the await a stuck task never got past."""

from __future__ import annotations

import asyncio
import threading

import pytest

from tests.hang_report import _ask_loop_for_tasks


async def never_answered(event: asyncio.Event) -> None:
    await event.wait()


async def test_each_task_is_reported_down_to_the_await_it_is_stuck_on(
    capfd: pytest.CaptureFixture[str],
) -> None:
    stuck = asyncio.create_task(never_answered(asyncio.Event()), name="stuck-one")
    await asyncio.sleep(0)
    reporter = threading.Thread(target=_ask_loop_for_tasks, args=(threading.get_ident(), "tests::hung"))
    reporter.start()
    await asyncio.sleep(0.2)  # idle in the loop's select, as a hung test is, while the report comes
    reporter.join()
    stuck.cancel()

    report = capfd.readouterr().err
    assert "tests::hung is about to time out; its 2 asyncio task(s) await:" in report
    stuck_part = report.split("- task stuck-one:")[1]
    assert "in never_answered" in stuck_part
    assert "in wait" in stuck_part  # asyncio.Event.wait, below the test's own coroutine
    assert "on <Future pending" in stuck_part


def test_a_thread_running_no_event_loop_is_said_so(capfd: pytest.CaptureFixture[str]) -> None:
    _ask_loop_for_tasks(threading.get_ident(), "tests::sync")
    assert "tests::sync is about to time out; no event loop runs in its thread" in capfd.readouterr().err
