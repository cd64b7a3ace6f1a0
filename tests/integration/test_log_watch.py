"""The log-loss watch against the embedded broker: it must never re-create a lost referrals topic
itself (with the broker's default partition count), and its recovery creates it as configured."""

from __future__ import annotations

from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient
from signpost.shared.kafka import ensure_topics
from signpost.shared.logwatch import LogLossWatch, describe_without_creating, log_lost
from signpost.shared.settings import Settings
from signpost.shared.topics import Topics

from tests.conftest import settings_for
from tests.servers import MongoServer, RestartableKafka


async def _partitions(settings: Settings, topic: str) -> list[int] | None:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        return (await describe_without_creating(admin, topic)).partitions
    finally:
        await admin.close()


async def test_a_lost_topic_is_read_as_lost_and_created_with_the_configured_partitions(
    settings: Settings,
) -> None:
    # A count the broker's default (4 on Tansu) is not: a topic re-created by a metadata request shows.
    settings = settings.model_copy(update={"topic_partitions": 5})
    topics = Topics.from_settings(settings)
    replayed: list[list[int] | None] = []

    async def on_loss() -> None:  # the replay: by then the topic is there as start-up creates it
        replayed.append(await _partitions(settings, topics.referrals))

    watch = LogLossWatch(settings, group=topics.group("routing"), on_loss=on_loss)
    try:
        # The topic was never created here: what a broker that lost its log shows.
        now, reason = await watch.round(None, had_offsets=False)
    finally:
        await watch.close()
    assert now.missing and reason == "the referrals topic is gone"
    assert replayed == [[0, 1, 2, 3, 4]]


async def test_reading_a_missing_topic_does_not_create_it(settings: Settings) -> None:
    topics = Topics.from_settings(settings)
    watch = LogLossWatch(settings, group=topics.group("intake"), on_loss=_never)
    try:
        state = await watch.read()
        assert state.missing and state.ends == {}
        assert await _partitions(settings, topics.referrals) is None  # still not there
        await ensure_topics(settings)
        state = await watch.read()
        assert not state.missing and sorted(state.ends) == list(range(topics.partitions))
    finally:
        await watch.close()


async def test_a_restarted_embedded_broker_reads_as_a_lost_log_whatever_its_log_shows(
    restartable_kafka: RestartableKafka, mongodb: MongoServer, dev_key_file: Path
) -> None:
    settings = settings_for(restartable_kafka.as_server(), mongodb, auth_dev_key_file=dev_key_file)
    await ensure_topics(settings)
    watch = LogLossWatch(settings, group=Topics.from_settings(settings).group("routing"), on_loss=_never)
    try:
        before = await watch.read()
        await restartable_kafka.restart()
        await watch.close()  # its clients were the old broker's
        # The topics created again as configured, empty as before: only the cluster id tells them apart.
        await ensure_topics(settings)
        now = await watch.read()
    finally:
        await watch.close()
    assert (now.ends, now.committed, now.missing) == (before.ends, before.committed, before.missing)
    assert before.cluster and now.cluster
    assert log_lost(before, now, had_offsets=False) == (
        f"the broker's cluster id went from {before.cluster!r} to {now.cluster!r}"
    )


async def _never() -> None:
    raise AssertionError("no loss to recover from")
