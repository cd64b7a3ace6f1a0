"""A rebuild given up while it runs (a live consumer that waited too long for it, or by hand)
says so and swaps nothing in; one whose process died is given up by hand."""

from __future__ import annotations

import asyncio

import pytest
from signpost.analytics.projections import sets
from signpost.analytics.projections.sets import (
    RebuildAbandoned,
    abandon_building,
    read_pointer,
    start_building,
)
from signpost.analytics.rebuild import service
from signpost.analytics.rebuild.service import projection_sets, rebuild
from signpost.shared.mongo import Database

from signpost.platform.cli import main
from tests.integration.analytics.conftest import Analytics
from tests.integration.analytics.test_pulse import scenario
from tests.integration.analytics.test_rebuild import command_uses
from tests.integration.analytics.test_rebuild_order import database, folded_live


async def test_a_rebuild_given_up_while_it_runs_says_so_and_swaps_nothing_in(
    analytics: Analytics, monkeypatch: pytest.MonkeyPatch
) -> None:
    await analytics.publish(scenario())
    await folded_live(analytics)
    db = database(analytics)
    active = (await read_pointer(db)).active

    async def given_up_at_the_hand_over(db: Database, name: str) -> None:
        await sets.hand_over(db, name)
        assert await abandon_building(db) == name  # as a live consumer that waited 60 s would

    monkeypatch.setattr(service, "hand_over", given_up_at_the_hand_over)
    with pytest.raises(RebuildAbandoned, match="no longer being built"):
        await rebuild(analytics.settings)

    pointer = await read_pointer(db)
    assert pointer.active == active and pointer.building is None
    assert await projection_sets(db) == {active.name}  # the abandoned set was dropped


async def test_a_rebuild_whose_process_died_is_given_up_by_hand(
    analytics: Analytics, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    db = database(analytics)
    await start_building(db, "r-dead")  # and its process killed: nothing will ever finish or give it up
    command_uses(analytics.settings, monkeypatch)

    assert await asyncio.to_thread(main, ["analytics", "rebuild"]) == 2
    refused = capsys.readouterr().err
    assert "'r-dead' is being rebuilt already (since " in refused and "rebuild --abandon" in refused

    assert await asyncio.to_thread(main, ["analytics", "rebuild", "--abandon"]) == 0
    assert "abandoned the rebuild of 'r-dead'" in capsys.readouterr().out
    assert (await read_pointer(db)).building is None
    assert await asyncio.to_thread(main, ["analytics", "rebuild", "--abandon"]) == 0
    assert "no rebuild under way" in capsys.readouterr().out
    assert await asyncio.to_thread(main, ["analytics", "rebuild", "--no-compare"]) == 0
