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
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

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
        # JSON may escape a lone surrogate, UTF-8 cannot carry one: sent escaped, routing skips the service.
        (lone := tmp_path / "lone-surrogate.json").write_text(
            json.dumps([oruk_service(3, description="Drop-in \ud800")])
        )
        code, out, _ = run(str(lone), "--routing", routing)
        assert code == 0 and "0 created" in out and "description holds a lone surrogate" in out
        wait_until_published(settings)

    code, _, err = run(str(feed), "--routing", f"http://127.0.0.1:{free_port()}")
    assert code == 1 and "cannot reach routing" in err


def import_args(feed: Path, *flags: str) -> list[str]:
    """An import of `feed` to a port nothing listens on, with a token (no signing key made), then `flags`."""
    return [
        "catalogue",
        "import",
        str(feed),
        "--routing",
        f"http://127.0.0.1:{free_port()}",
        "--token",
        "t0k",
        *flags,
    ]


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b'[{"name": "Caf\xe9"}]', "is not UTF-8 text (byte 14: invalid continuation byte)"),
        (b"[" * 100_000 + b"]" * 100_000, "nests arrays or objects too deeply to read"),
        (b'[{"minimum_age": NaN}]', "is not JSON: NaN is not a JSON value"),
    ],
)
def test_the_cli_refuses_a_file_that_is_not_json_text(
    content: bytes, problem: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (feed := tmp_path / "feed.json").write_bytes(content)
    assert main(import_args(feed)) == 2
    assert f"signpost: {feed} {problem}" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("flag", "value", "problem"),
    [
        ("--routing", "http://[::1", "not a valid URL: 'http://[::1'"),
        ("--routing", "http://localhost:80O1", "not a valid URL: 'http://localhost:80O1'"),
        ("--token", "é", "not a bearer token"),
    ],
)
def test_the_cli_refuses_flags_it_could_not_send(
    flag: str, value: str, problem: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (feed := tmp_path / "feed.json").write_text(json.dumps([oruk_service(1)]))
    with pytest.raises(SystemExit) as exit_:
        main(import_args(feed, flag, value))  # the later flag wins
    assert exit_.value.code == 2
    assert f"argument {flag}: {problem}" in capsys.readouterr().err


def test_the_cli_says_when_what_answers_at_routings_url_is_not_routing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async def accepted(request: Request) -> JSONResponse:
        return JSONResponse({"accepted": True})

    (feed := tmp_path / "feed.json").write_text(json.dumps([oruk_service(1)]))
    impostor = Starlette(routes=[Route("/v1/catalogue/import", accepted, methods=["POST"])])
    with serve_in_thread(impostor) as url:
        assert main(import_args(feed, "--routing", url)) == 1
    err = capsys.readouterr().err
    assert "answered HTTP 200 without an import report" in err and url in err
