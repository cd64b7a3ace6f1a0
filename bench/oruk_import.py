"""ORUK import speed on real servers (embedded Tansu and SecantusDB unless
SIGNPOST_KAFKA_BOOTSTRAP / SIGNPOST_MONGODB_URL are set): services/s for a first import
(all created), a re-import (all unchanged) and one where every capacity changed (all updated).

    uv run --extra embedded python bench/oruk_import.py [--services 200 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from signpost.routing.app import create_app
from signpost.shared.auth.principal import Role
from signpost.shared.auth.tokens import issue_dev_token
from signpost.shared.settings import Settings

from signpost.platform.embedded import start_kafka, start_mongodb
from signpost.platform.processes import stop_all

TERMS = ["Autism", "Speech and language therapy", "Dyslexia", "Mental health", "Deaf", "Physiotherapy"]


def service(number: int, *, available: int) -> dict[str, Any]:
    def uid(label: str) -> str:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"urn:bench:{label}:{number}"))

    return {
        "id": uid("service"),
        "name": f"Service {number}",
        "status": "active",
        "minimum_age": number % 10,
        "maximum_age": 10 + number % 15,
        "organization": {
            "id": uid("org"),
            "name": f"Organisation {number % 40}",
            "description": "A provider",
        },
        "service_areas": [{"id": uid("area"), "name": f"locality-{number % 12}"}],
        "attributes": [
            {"id": uid("attr"), "taxonomy_term": {"id": uid("term"), "name": TERMS[number % len(TERMS)]}}
        ],
        "capacities": [
            {
                "id": uid("cap"),
                "unit": {"id": uid("unit"), "name": "places"},
                "available": available,
                "maximum": 20,
            }
        ],
        "wait_time": f"{number % 12} weeks",
    }


async def run(sizes: list[int], settings: Settings) -> None:
    app = create_app(settings)
    token = issue_dev_token(
        key_file=settings.dev_key_file,
        subject="bench",
        role=Role.ADMIN,
        organisation="la-digital",
        tenant=settings.tenant,
        audience=settings.auth_audience,
    )
    headers = {"Authorization": f"Bearer {token}"}
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench", timeout=600) as client:
            offset = 0
            print(f"{'services':>9} {'created/s':>10} {'unchanged/s':>12} {'updated/s':>10}")
            for size in sizes:
                rates = []
                for available in (5, 5, 6):
                    feed = [service(offset + n, available=available) for n in range(size)]
                    started = time.perf_counter()
                    answer = await client.post("/v1/catalogue/import", json={"feed": feed}, headers=headers)
                    elapsed = time.perf_counter() - started
                    assert answer.status_code == 200, answer.text
                    rates.append(size / elapsed)
                print(f"{size:>9} {rates[0]:>10.0f} {rates[1]:>12.0f} {rates[2]:>10.0f}")
                offset += size
            for _ in range(600):  # leave once the relay has published everything (at most a minute)
                if not await app.state.runtime.db["outbox"].count_documents({"published_at": None}):
                    break
                await asyncio.sleep(0.1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--services", type=int, nargs="+", default=[200, 1000])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        servers = []
        kafka = os.environ.get("SIGNPOST_KAFKA_BOOTSTRAP")
        mongodb = os.environ.get("SIGNPOST_MONGODB_URL")
        if not kafka:
            servers.append(started := start_kafka())
            kafka = started.url
        if not mongodb:
            servers.append(started := start_mongodb(data_dir=Path(scratch) / "mongodb"))
            mongodb = started.url
        run_id = uuid.uuid4().hex[:8]
        settings = Settings(
            kafka_bootstrap=kafka,
            mongodb_url=mongodb,
            kafka_idempotence=bool(os.environ.get("SIGNPOST_KAFKA_BOOTSTRAP")),
            topic_prefix=f"bench{run_id}.",
            database_prefix=f"bench{run_id}",
            log_format="json",
            log_level="WARNING",
            auth_dev_key_file=Path(scratch) / "key.pem",
        )
        try:
            asyncio.run(run(args.services, settings))
        finally:
            stop_all([server.process for server in servers], timeout_s=5)


if __name__ == "__main__":
    main()
