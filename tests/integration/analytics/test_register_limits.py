"""The settings register's writes are rate limited per caller, as intake's and routing's are."""

from __future__ import annotations

from pathlib import Path

import httpx
from signpost.analytics.app import create_app

from tests.conftest import Tokens, settings_for
from tests.servers import KafkaServer, MongoServer


async def test_register_writes_beyond_the_rate_limit_get_429_with_retry_after(
    kafka: KafkaServer, mongodb: MongoServer, dev_key_file: Path
) -> None:
    settings = settings_for(kafka, mongodb, auth_dev_key_file=dev_key_file, rate_limit_writes_per_minute=2)
    admin = {"Authorization": f"Bearer {Tokens(settings).admin()}"}
    body = {"name": "Ashley Primary", "locality": "Ashley", "phase": "primary"}
    # The limit sits in front of the handlers: requests straight to the app, no consumers needed.
    transport = httpx.ASGITransport(app=create_app(settings))
    async with httpx.AsyncClient(transport=transport, base_url="http://signpost.test") as client:
        put = [
            (await client.put("/v1/settings-register/URN100001", json=body, headers=admin)) for _ in range(2)
        ]
        assert [response.status_code for response in put] == [202, 202]
        refused = await client.delete("/v1/settings-register/URN100001", headers=admin)
        assert refused.status_code == 429
        assert int(refused.headers["retry-after"]) >= 1 and "too many writes" in refused.json()["detail"]
