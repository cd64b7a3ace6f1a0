"""The settings register outlives a broker that loses its log: its changes go out through
analytics' outbox, which sends them again to a broker that has lost them."""

from __future__ import annotations

import httpx
from aiokafka import TopicPartition
from signpost.analytics.app import create_app
from signpost.analytics.rebuild.service import rebuild
from signpost.shared.offsets import stream_inspector
from signpost.shared.settings import Settings
from signpost.shared.topics import Topics

from tests.conftest import Tokens, eventually, serving
from tests.servers import KafkaServer


async def test_a_registered_setting_is_sent_again_to_a_broker_that_lost_its_log(
    settings: Settings, own_kafka: KafkaServer
) -> None:
    admin = {"Authorization": f"Bearer {Tokens(settings).admin()}"}
    body = {"name": "Ashley Primary", "locality": "Ashley", "phase": "primary"}
    async with serving(create_app(settings)) as client:
        response = await client.put("/v1/settings-register/URN100001", json=body, headers=admin)
        assert response.status_code == 202, response.text
        assert await eventually(lambda: _register(client, admin), what="the setting folded") == ["URN100001"]

    # The broker loses its log (the embedded one, restarted): the same topic names and databases,
    # no records and no consumer group offsets.
    after_loss = settings.model_copy(
        update={"kafka_bootstrap": own_kafka.bootstrap, "kafka_idempotence": own_kafka.idempotence}
    )
    async with serving(create_app(after_loss)) as client:
        await eventually(lambda: _records_on_the_register_topic(after_loss), what="the change sent again")

        report = await rebuild(after_loss)

        assert report.comparison is not None and report.comparison.identical, report.comparison
        assert await _register(client, admin) == ["URN100001"]  # what GET answered [] for


async def _register(client: httpx.AsyncClient, admin: dict[str, str]) -> list[str]:
    listed = await client.get("/v1/settings-register", headers=admin)
    return [setting["setting_id"] for setting in listed.json()]


async def _records_on_the_register_topic(settings: Settings) -> int:
    only = TopicPartition(Topics.from_settings(settings).settings_register, 0)
    async with stream_inspector(settings) as inspector:
        return (await inspector.watermarks([only]))[only].high
