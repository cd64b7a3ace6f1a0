"""Optional conformance: the official ORUK UK-profile examples import, and our feed validates
against the official schemas. Reads them from `<repo>/../shared/data/openreferral-uk` (CC BY-SA,
never copied into the repository); skipped cleanly where that folder is absent."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
from signpost.routing.app import create_app as create_routing

from tests.conftest import Tokens, eventually, serving, settings_for
from tests.oruk_fixtures import OFFICIAL_ORUK, needs_official_oruk, oruk_feed_app, oruk_service
from tests.servers import KafkaServer, MongoServer
from tests.threaded_server import serve_in_thread

pytestmark = needs_official_oruk


def official(relative: str) -> Any:
    return json.loads((OFFICIAL_ORUK / relative).read_text(encoding="utf-8"))


def validator(schema: str) -> jsonschema.protocols.Validator:
    document = official(f"schema/compiled/{schema}")
    cls = jsonschema.validators.validator_for(document, default=jsonschema.Draft202012Validator)
    return cls(document, format_checker=jsonschema.FormatChecker())


async def test_official_examples_import_and_our_feed_meets_the_official_schemas(
    kafka: KafkaServer, mongodb: MongoServer, dev_key_file: Path, tmp_path: Path
) -> None:
    example = official("examples/service_full.json")
    term_id = example["attributes"][0]["taxonomy_term"]["id"]
    taxonomy_map = tmp_path / "map.json"  # the example's placeholder term means counselling here
    taxonomy_map.write_text(
        json.dumps(
            {
                "default_sector": "voluntary",
                "terms": {
                    term_id: {"need_codes": ["SEMH"]},
                    "speech and language therapy": {"need_codes": ["SLCN"]},
                },
            }
        )
    )
    settings = settings_for(kafka, mongodb, auth_dev_key_file=dev_key_file, oruk_taxonomy_map=taxonomy_map)
    admin = {"Authorization": f"Bearer {Tokens(settings).admin()}"}
    app = create_routing(settings)
    with serve_in_thread(oruk_feed_app([example])) as feed_url:
        async with serving(app) as routing:
            answer = await routing.post("/v1/catalogue/import", json={"source_url": feed_url}, headers=admin)
            report = answer.json()
            assert answer.status_code == 200 and report["totals"]["created"] == 1, report
            provision = (await routing.get(f"/v1/provisions/{example['id']}")).json()
            assert (provision["min_age"], provision["max_age"], provision["need_codes"]) == (12, 25, ["SEMH"])

            listed = official("examples/service_list.json")  # a page of partial entries, posted as a document
            posted = (await routing.post("/v1/catalogue/import", json={"feed": listed}, headers=admin)).json()
            assert posted["totals"]["unchanged"] == 0 and posted["skipped"][0]["oruk_id"] == example["id"]
            assert any("import from the feed's base URL" in warning for warning in posted["warnings"])

            ours = (
                await routing.post("/v1/catalogue/import", json={"feed": [oruk_service(1)]}, headers=admin)
            ).json()
            assert ours["totals"]["created"] == 1

            page = (await routing.get("/oruk/services", params={"per_page": 100})).json()
            assert page["total_items"] == len(page["contents"]) == 8  # the starter six and the two imported
            service_list, service = validator("service_list.json"), validator("service.json")
            for item in page["contents"]:
                service_list.validate(item)
                service.validate((await routing.get(f"/oruk/services/{item['id']}")).json())
            await eventually(lambda: _published(app), what="every staged event published")


async def _published(app: Any) -> bool:
    from signpost.shared.outbox import pending_count

    return await pending_count(app.state.runtime.db) == 0
