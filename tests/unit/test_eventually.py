"""The integration tests' polling helper fails with its own message, never by hanging."""

import asyncio

import pytest

from tests.conftest import eventually


async def test_a_probe_that_never_answers_fails_at_the_deadline() -> None:
    async def stuck() -> int:
        await asyncio.Event().wait()
        return 1

    with pytest.raises(AssertionError, match=r"decision: the probe did not answer within 0\.2 s"):
        await eventually(stuck, timeout_s=0.2, what="decision")


async def test_a_probe_that_answers_falsy_fails_with_its_last_answer() -> None:
    async def empty() -> list[int]:
        return []

    with pytest.raises(AssertionError, match=r"decision not reached within 0\.2 s \(last: \[\]\)"):
        await eventually(empty, timeout_s=0.2, what="decision")


async def test_a_probe_that_answers_returns_its_answer() -> None:
    answers = iter([None, None, 7])

    async def third_time() -> int | None:
        return next(answers)

    assert await eventually(third_time, timeout_s=5) == 7
