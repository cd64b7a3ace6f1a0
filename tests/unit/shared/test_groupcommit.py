"""Group commit's own logic, with in-memory writers: who is grouped with whom, and who gets which answer."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest
from pymongo.errors import AutoReconnect
from signpost.shared.groupcommit import GroupCommit, Overloaded


class Writer:
    """Records each group it is asked to write; refuses the items in `refused`, fails groups
    holding `poison`, and raises `away` for every write while set."""

    def __init__(self, *, poison: str | None = None) -> None:
        self.groups: list[list[str]] = []
        self.alone: list[str] = []
        self.poison = poison
        self.away: Exception | None = None

    async def write_batch(self, items: Sequence[str]) -> list[str | Exception]:
        await asyncio.sleep(0.01)  # a commit takes time: later arrivals gather meanwhile
        if self.away:
            raise self.away
        if self.poison in items:
            raise RuntimeError("the group's transaction failed")
        self.groups.append(list(items))
        return [ValueError(item) if item.startswith("refused") else f"stored {item}" for item in items]

    async def write_one(self, item: str) -> str:
        if self.away:
            raise self.away
        self.alone.append(item)
        if item == self.poison:
            raise RuntimeError(f"cannot store {item}")
        return f"stored {item}"


def batcher(
    writer: Writer, *, max_batch: int = 64, linger_s: float = 0.0, max_waiting: int = 1000
) -> GroupCommit[str, str]:
    return GroupCommit(
        write_batch=writer.write_batch,
        write_one=writer.write_one,
        max_batch=max_batch,
        linger_s=linger_s,
        max_waiting=max_waiting,
    )


async def test_concurrent_submissions_share_a_write_and_each_gets_its_own_answer() -> None:
    writer = Writer()
    group = batcher(writer, linger_s=0.005)
    answers = await asyncio.gather(*(group.submit(f"r{n}") for n in range(5)))
    assert answers == [f"stored r{n}" for n in range(5)]
    assert writer.groups == [[f"r{n}" for n in range(5)]]


async def test_arrivals_during_a_write_form_the_next_group() -> None:
    writer = Writer()
    group = batcher(writer)
    first = asyncio.create_task(group.submit("a"))
    await asyncio.sleep(0)  # "a" is being written alone
    later = [asyncio.create_task(group.submit(name)) for name in ("b", "c", "d")]
    assert [await first, *[await task for task in later]] == ["stored a", "stored b", "stored c", "stored d"]
    assert writer.alone == ["a"] and writer.groups == [["b", "c", "d"]]


async def test_groups_never_exceed_max_batch() -> None:
    writer = Writer()
    group = batcher(writer, max_batch=2, linger_s=0.005)
    await asyncio.gather(*(group.submit(f"r{n}") for n in range(5)))
    assert writer.groups == [["r0", "r1"], ["r2", "r3"]] and writer.alone == ["r4"]


async def test_an_item_refused_inside_a_group_fails_alone() -> None:
    writer = Writer()
    group = batcher(writer, linger_s=0.005)
    answers = await asyncio.gather(
        group.submit("r1"), group.submit("refused-r2"), group.submit("r3"), return_exceptions=True
    )
    assert answers[0] == "stored r1" and answers[2] == "stored r3"
    assert isinstance(answers[1], ValueError)


async def test_a_failing_group_is_written_again_one_by_one_so_neighbours_succeed() -> None:
    writer = Writer(poison="bad")
    group = batcher(writer, linger_s=0.005)
    answers = await asyncio.gather(
        group.submit("r1"), group.submit("bad"), group.submit("r3"), return_exceptions=True
    )
    assert answers[0] == "stored r1" and answers[2] == "stored r3"
    assert isinstance(answers[1], RuntimeError) and "cannot store bad" in str(answers[1])
    assert sorted(writer.alone) == ["bad", "r1", "r3"]


async def test_while_the_database_is_away_every_item_gets_that_error_without_one_by_one_retries() -> None:
    writer = Writer()
    writer.away = AutoReconnect("connection refused")
    group = batcher(writer, linger_s=0.005)
    answers = await asyncio.gather(*(group.submit(f"r{n}") for n in range(3)), return_exceptions=True)
    assert all(isinstance(answer, AutoReconnect) for answer in answers)
    assert writer.alone == []


def test_settings_out_of_range_are_refused() -> None:
    writer = Writer()
    with pytest.raises(ValueError, match="max_batch"):
        batcher(writer, max_batch=0)


async def test_beyond_max_waiting_a_submission_is_refused_at_once_and_the_others_are_written() -> None:
    writer = Writer()
    group = batcher(writer, max_batch=2, linger_s=0.005, max_waiting=3)
    waiting = [asyncio.create_task(group.submit(f"r{n}")) for n in range(3)]
    await asyncio.sleep(0)  # all three queued; the flusher still lingers
    with pytest.raises(Overloaded) as refused:
        await group.submit("r3")
    assert refused.value.waiting == 3
    assert await asyncio.gather(*waiting) == ["stored r0", "stored r1", "stored r2"]
    assert writer.groups == [["r0", "r1"]] and writer.alone == ["r2"]
    assert await group.submit("r4") == "stored r4"  # room again once they are written
