"""Rebuild on real servers: replayed from the log, the projections equal the live ones, then take over."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import pytest
from aiokafka import TopicPartition
from signpost.analytics.projections.sets import Pointer, ProjectionSet, read_pointer
from signpost.analytics.rebuild import service
from signpost.analytics.rebuild.compare import comparable
from signpost.analytics.rebuild.service import IncompleteLog, projection_sets, rebuild
from signpost.shared.events import (
    Envelope,
    EventData,
    ProvisionChangedV1,
    SettingChangedV1,
    new_event,
    to_kafka_headers,
    to_kafka_value,
)
from signpost.shared.kafka import ensure_topics
from signpost.shared.mongo import Database
from signpost.shared.offsets import Watermarks
from signpost.shared.settings import Settings

from signpost.platform.cli import main
from tests.analytics_events import T0, TENANT, lifecycle
from tests.integration.analytics.conftest import Analytics
from tests.integration.analytics.test_pulse import EXPECTED, scenario


async def snapshot(db: Database, target: ProjectionSet) -> dict[str, list[dict[str, Any]]]:
    """Every document of every projection collection, by collection kind, sorted by _id, as a
    rebuild's comparison sees it (`comparable`: a fact's `events` in arrival order differ between
    a replay and what the live consumer folded meanwhile)."""
    return {
        collection.removeprefix(target.name): [
            comparable(document) async for document in db[collection].find().sort("_id", 1)
        ]
        for collection in target.collections()
    }


async def test_rebuilt_projections_equal_the_live_ones_and_live_folding_continues(
    analytics: Analytics, monkeypatch: pytest.MonkeyPatch
) -> None:
    catalogue: list[Envelope[EventData]] = [
        new_event(
            ProvisionChangedV1(
                provision_id="speech-therapy",
                change="created",
                provision={"name": "Speech Therapy", "sector": "health", "waiting_weeks": 6},
                changed_at=T0,
            ),
            source="tests",
            tenant=TENANT,
        )
    ]
    register: list[Envelope[EventData]] = [
        new_event(
            SettingChangedV1(
                setting_id="URN100001",
                change="registered",
                name="Ashley Primary",
                locality="Ashley",
                changed_at=T0,
            ),
            source="tests",
            tenant=TENANT,
        )
    ]
    await analytics.publish(catalogue, topic=analytics.topics.provisions)
    await analytics.publish(register, topic=analytics.topics.settings_register)
    events = scenario() + lifecycle("rr-1", "declined", child_ref="child-1") + lifecycle("rr-2", "withdrawn")
    await analytics.publish(events)
    await analytics.publish(events[:10])  # redeliveries change nothing, live or replayed
    expected = {**EXPECTED, "submitted": 16, "routed": 13, "declined": 1, "withdrawn": 1, "rereferred": 1}
    await analytics.until(expected)
    db = analytics.client._transport.app.state.runtime.db  # type: ignore[attr-defined]
    live = (await read_pointer(db)).active

    report = await rebuild(analytics.settings)

    assert report.replaced == live.name and report.events == 1 + 1 + len(events) + 10
    assert (await read_pointer(db)).active.name == report.active
    assert await snapshot(db, ProjectionSet(report.active)) == await snapshot(db, live)
    await analytics.until(expected)  # the API now reads the rebuilt set

    await analytics.publish(lifecycle("after-rebuild", "routed"))
    await analytics.until({**expected, "submitted": 17, "routed": 14})
    waiting = await analytics.get("/v1/pulse/waiting")
    assert [(row["label"], row["advertised_waiting_weeks"]) for row in waiting["rows"]][-1] == (
        "Speech Therapy",
        6,
    )

    # A second rebuild, through the command a person runs, keeps the set it replaces and drops older ones.
    for name in ("KAFKA_BOOTSTRAP", "MONGODB_URL"):
        monkeypatch.delenv(f"SIGNPOST_{name}", raising=False)
    assert main(["analytics", "rebuild"]) == 2  # says which URLs to set
    command_uses(analytics.settings, monkeypatch)
    assert await asyncio.to_thread(main, ["analytics", "rebuild"]) == 0
    second = (await read_pointer(db)).active.name
    assert await projection_sets(db) == {second, report.active}
    assert await snapshot(db, ProjectionSet(second)) == await snapshot(db, ProjectionSet(report.active))


def command_uses(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point `signpost analytics rebuild` at these settings' servers, topics and databases."""
    for name, value in (
        ("KAFKA_BOOTSTRAP", settings.kafka_bootstrap),
        ("MONGODB_URL", settings.mongodb_url),
        ("TOPIC_PREFIX", settings.topic_prefix),
        ("DATABASE_PREFIX", settings.database_prefix),
        ("KAFKA_IDEMPOTENCE", str(settings.kafka_idempotence).lower()),
    ):
        monkeypatch.setenv(f"SIGNPOST_{name}", str(value))


async def test_a_log_that_lost_what_the_live_set_was_folded_from_is_not_swapped_in_unless_forced(
    analytics: Analytics, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    await analytics.publish(scenario())
    await analytics.until(EXPECTED)
    db = analytics.client._transport.app.state.runtime.db  # type: ignore[attr-defined]
    live = (await read_pointer(db)).active.name
    # The broker lost its log (the embedded one, restarted): the same databases, topics started afresh.
    after_loss = analytics.settings.model_copy(
        update={"topic_prefix": f"{analytics.settings.topic_prefix}new."}
    )
    await ensure_topics(after_loss)

    with pytest.raises(IncompleteLog) as refused:
        await rebuild(after_loss)
    assert refused.value.comparison is not None and refused.value.comparison.only_in_active > 0
    assert await read_pointer(db) == Pointer(active=ProjectionSet(live), building=None)
    assert await projection_sets(db) == {live}  # the rebuilt set is dropped
    await analytics.until(EXPECTED)

    command_uses(after_loss, monkeypatch)
    assert await asyncio.to_thread(main, ["analytics", "rebuild"]) == 1
    said = capsys.readouterr()
    assert "nothing swapped in: the log no longer holds every event" in said.err
    assert "referral_facts:" in said.err and "only in the active set" in said.err
    assert "swapped it in" not in said.out
    assert (await read_pointer(db)).active.name == live

    assert await asyncio.to_thread(main, ["analytics", "rebuild", "--force"]) == 1  # swapped; they differ
    assert "swapped it in" in capsys.readouterr().out
    assert (await read_pointer(db)).active.name != live


async def test_a_log_that_no_longer_starts_at_offset_0_is_not_replayed_unless_forced(
    analytics: Analytics, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the comparison, the log's start tells: events before it are gone (retention, or
    records deleted). Tansu cannot delete records, so its answer is changed here."""
    await analytics.publish(scenario())
    await analytics.until(EXPECTED)
    db = analytics.client._transport.app.state.runtime.db  # type: ignore[attr-defined]
    live = (await read_pointer(db)).active.name
    first = TopicPartition(analytics.topics.referrals, 0)
    measured = service._watermarks

    async def truncated(
        settings: Settings, partitions: list[TopicPartition]
    ) -> dict[TopicPartition, Watermarks]:
        marks = await measured(settings, partitions)
        return {**marks, first: replace(marks[first], low=1)}

    monkeypatch.setattr(service, "_watermarks", truncated)
    with pytest.raises(
        IncompleteLog, match=rf"no longer starts at offset 0 on {first.topic}\[0\] \(from offset 1\)"
    ):
        await rebuild(analytics.settings, compare=False)
    assert await read_pointer(db) == Pointer(active=ProjectionSet(live), building=None)
    assert await projection_sets(db) == {live}

    forced = await rebuild(analytics.settings, compare=False, force=True)
    assert forced.replaced == live and (await read_pointer(db)).active.name == forced.active


async def test_a_rebuild_drops_what_earlier_releases_kept(analytics: Analytics) -> None:
    """Before the projections were rebuilt around the facts, each set also had `_buckets` and
    `_children` collections; a rebuild drops them with older sets and beside the set it keeps."""
    await analytics.publish(scenario())
    await analytics.until(EXPECTED)
    db = analytics.client._transport.app.state.runtime.db  # type: ignore[attr-defined]
    live = (await read_pointer(db)).active.name
    old_set = "r20260101090000ab12"  # only its obsolete collections are left
    for collection in (f"{live}_buckets", f"{live}_children", f"{old_set}_buckets", f"{old_set}_children"):
        await db[collection].insert_one({"_id": "from an earlier release"})
    assert await projection_sets(db) == {live, old_set}

    report = await rebuild(analytics.settings)

    assert report.replaced == live
    assert report.dropped == [old_set, f"{live}_buckets", f"{live}_children"]
    assert await projection_sets(db) == {live, report.active}
    remaining = set(await db.list_collection_names())
    assert not {name for name in remaining if name.endswith(("_buckets", "_children"))}
    assert ProjectionSet(live).facts in remaining  # the set replaced is kept
    await analytics.until(EXPECTED)  # read from the rebuilt set


async def test_events_arriving_during_a_rebuild_are_counted_once_in_the_new_set(analytics: Analytics) -> None:
    await analytics.publish(scenario())
    await analytics.until(EXPECTED)
    db = analytics.client._transport.app.state.runtime.db  # type: ignore[attr-defined]

    async def meanwhile() -> None:
        for n in range(10):
            await analytics.publish(lifecycle(f"during-{n}", "accepted", locality="Dorrington"))
            await asyncio.sleep(0.05)

    report, _ = await asyncio.gather(rebuild(analytics.settings), meanwhile())
    assert (await read_pointer(db)).active.name == report.active
    after = await analytics.until({**EXPECTED, "submitted": 24, "routed": 21, "accepted": 21})
    assert after["escalated"]["value"] == 2
    rebuilt_again = await rebuild(analytics.settings)
    assert await snapshot(db, ProjectionSet(rebuilt_again.active)) == await snapshot(
        db, ProjectionSet(report.active)
    )


async def test_a_rebuild_replays_every_record_of_a_batch_and_compares_itself_with_the_live_set(
    analytics: Analytics,
) -> None:
    """Producers batch records (intake's outbox relay does); the replay must read to the log's real end,
    which Tansu's ListOffsets hides behind the first record of the last batch."""
    events = scenario()
    sent = [
        await analytics.producer.send(  # not awaited one by one: the records share batches
            analytics.topics.referrals,
            to_kafka_value(envelope),
            key=envelope.subject.encode(),
            headers=[(key, value.encode()) for key, value in to_kafka_headers(envelope).items()],
        )
        for envelope in events
    ]
    await analytics.producer.flush()
    await asyncio.gather(*sent)
    await analytics.until(EXPECTED)

    report = await rebuild(analytics.settings)

    assert report.events == len(events)
    assert report.comparison is not None and report.comparison.identical, report.comparison
    assert report.comparison.documents > len(events) // 5  # facts and buckets, not an empty set
    await analytics.until(EXPECTED)  # read from the rebuilt set
