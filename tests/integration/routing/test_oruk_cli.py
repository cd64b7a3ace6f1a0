"""`signpost catalogue import` against routing served on a real port, as a person runs it."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from pymongo import MongoClient
from signpost.routing.app import create_app as create_routing
from signpost.shared.mongo import Document
from signpost.shared.outbox import PENDING
from signpost.shared.settings import Settings

from signpost.platform.cli import main
from signpost.platform.processes import free_port
from tests.oruk_fixtures import oruk_service, term
from tests.threaded_server import serve_in_thread


def wait_until_published(settings: Settings) -> None:
    """Leave only once the relay has published what the imports staged."""
    with MongoClient[Document](settings.mongodb_url) as client:
        pending = client[settings.database_name("routing")][PENDING]
        deadline = time.monotonic() + 30
        while pending.count_documents({}) and time.monotonic() < deadline:
            time.sleep(0.05)


def test_the_cli_imports_a_file_prints_the_report_and_refuses_bad_input(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SIGNPOST_AUTH_DEV_KEY_FILE", str(settings.dev_key_file))
    monkeypatch.setenv("SIGNPOST_TENANT", settings.tenant)
    feed = tmp_path / "local-offer.json"
    feed.write_text(
        json.dumps([oruk_service(1), oruk_service(2, name="Youth club", attributes=[term("Youth club")])])
    )

    def run(*args: str) -> tuple[int, str, str]:
        code = main(["catalogue", "import", *args])
        out, err = capsys.readouterr()
        return code, out, err

    with serve_in_thread(create_routing(settings), lifespan=True) as routing:
        code, out, _ = run(str(feed), "--routing", routing)
        assert code == 0
        assert out.startswith(
            f"Imported from {feed}: 1 created, 0 updated, 0 unchanged, 1 skipped (2 services in the feed)"
        )
        assert f"  + Talking Together speech group 1  [{oruk_service(1)['id']}]" in out
        assert "  - Youth club  [" in out and "no taxonomy term maps to a need code or broad area" in out

        code, out, _ = run(str(feed), "--routing", routing)
        assert code == 0 and "0 created, 0 updated, 1 unchanged, 1 skipped" in out

        code, _, err = run(str(tmp_path / "missing.json"), "--routing", routing)
        assert code == 2 and "cannot read" in err and "missing.json" in err
        (broken := tmp_path / "broken.json").write_text("{not json")
        code, _, err = run(str(broken), "--routing", routing)
        assert code == 2 and "broken.json is not JSON" in err
        (shapeless := tmp_path / "shapeless.json").write_text('{"hello": "world"}')
        code, _, err = run(str(shapeless), "--routing", routing)
        assert code == 2 and "HTTP 422" in err and "body.feed: expected an ORUK page of services" in err
        code, _, err = run(str(feed), "--routing", routing, "--token", "not-a-token")
        assert code == 2 and "HTTP 401" in err and "SIGNPOST_DATA_DIR" in err
        wait_until_published(settings)

    code, _, err = run(str(feed), "--routing", f"http://127.0.0.1:{free_port()}")
    assert code == 1 and "cannot reach routing" in err
