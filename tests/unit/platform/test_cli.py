"""`signpost` refuses bad input (exit 2) and reports a server it cannot reach (exit 1) in one line on
stderr that names the flag or setting, never with a traceback."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import pytest
from signpost.shared.settings import SERVICE_NAMES, Settings

from signpost.platform import catalogue
from signpost.platform.cli import main
from signpost.platform.demo.console import demo_command
from signpost.platform.demo.runner import DemoOptions, Endpoints
from signpost.platform.processes import free_port


@pytest.fixture(autouse=True)
def own_data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The test's own data folder (and signing key); tests/unit/conftest.py clears the rest."""
    monkeypatch.setenv("SIGNPOST_DATA_DIR", str(tmp_path / "data"))


def nowhere() -> str:
    """A loopback address nothing listens on."""
    return f"127.0.0.1:{free_port()}"


def test_token_refuses_an_organisation_no_service_would_accept(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["token", "--role", "agency", "--org", ""]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("signpost: --org: ") and "at least 1 character" in err


@pytest.mark.parametrize(
    ("flag", "value", "problem"),
    [
        ("--minutes", "inf", "must be a finite number, not inf"),
        ("--rate", "inf", "must be a finite number, not inf"),
        ("--intake-url", "http://localhost:80O1", "not a valid URL: 'http://localhost:80O1'"),
        ("--routing-url", "http://[::1", "not a valid URL: 'http://[::1'"),
        ("--analytics-url", "localhost:8003", "must be an http:// or https:// URL"),
    ],
)
def test_demo_refuses_flags_it_cannot_use_before_it_starts(
    flag: str, value: str, problem: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # Every service elsewhere first: were the flag taken, the demo would find no platform.
    elsewhere = [arg for service in SERVICE_NAMES for arg in (f"--{service}-url", f"http://{nowhere()}")]
    with pytest.raises(SystemExit) as exit_:
        main(["demo", *elsewhere, flag, value])
    assert exit_.value.code == 2
    assert f"argument {flag}: {problem}" in capsys.readouterr().err


def test_demo_feed_into_a_missing_folder_says_it_cannot_write_there(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "missing" / "area.json"
    assert main(["demo", "--feed", str(target)]) == 2
    assert f"signpost: cannot write --feed {target}: No such file or directory" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("command", "server"),
    [
        (["dlq", "list"], "Kafka at {kafka} (SIGNPOST_KAFKA_BOOTSTRAP)"),
        (["migrate"], "Kafka at {kafka} (SIGNPOST_KAFKA_BOOTSTRAP)"),
        (["analytics", "rebuild"], "MongoDB at SIGNPOST_MONGODB_URL"),
    ],
)
def test_a_server_nobody_answers_at_is_named_with_exit_code_1(
    command: list[str], server: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    kafka = nowhere()
    monkeypatch.setenv("SIGNPOST_KAFKA_BOOTSTRAP", kafka)
    monkeypatch.setenv("SIGNPOST_MONGODB_URL", f"mongodb://{nowhere()}")
    assert main(command) == 1
    err = capsys.readouterr().err
    assert f"signpost: cannot reach {server.format(kafka=kafka)}: " in err
    assert "Traceback" not in err


def test_catalogue_import_reaches_routing_on_loopback_when_services_listen_on_every_ipv6_address(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    reached: list[str] = []

    def import_feed(source: str, *, routing: str, token: str) -> tuple[int, str]:
        reached.append(routing)
        return 0, "imported"

    monkeypatch.setattr(catalogue, "import_feed", import_feed)
    monkeypatch.setenv("SIGNPOST_HOST", "::")
    assert main(["catalogue", "import", "feed.json", "--token", "a.b.c"]) == 0
    assert reached == ["http://127.0.0.1:8002"]


@pytest.mark.parametrize(
    ("host", "where"),
    [
        ("::", "http://127.0.0.1:{port}"),  # services listening on every address: reached on loopback
        ("::1", "http://[::1]:{port}"),
        ("999.1.1.1", "http://999.1.1.1:{port}"),  # not an address at all
    ],
)
def test_demo_names_the_service_it_cannot_reach_whatever_the_host(
    host: str, where: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    port = free_port()
    monkeypatch.setenv("SIGNPOST_HOST", host)
    monkeypatch.setenv("SIGNPOST_INTAKE_PORT", str(port))
    assert main(["demo"]) == 2
    err = capsys.readouterr().err
    assert f"signpost demo: intake is not reachable at {where.format(port=port)} (" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("stopping", [False, True])
def test_the_demo_ends_quietly_when_the_platform_it_runs_in_stops(
    stopping: bool, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`signpost run --demo` on Ctrl-C: the platform going away is the end of the demo, not an
    error; the standalone demo losing its platform still is."""
    monkeypatch.setenv("SIGNPOST_INTAKE_PORT", str(free_port()))
    settings = Settings(_env_file=None)
    platform_stopping = threading.Event()
    if stopping:
        platform_stopping.set()
    code = demo_command(
        settings, Endpoints.from_settings(settings), DemoOptions(), platform_stopping=platform_stopping
    )
    out, err = capsys.readouterr()
    if stopping:
        assert (code, err) == (0, "")
        assert "stopped with the platform" in out
    else:
        assert code == 2 and "signpost demo: intake is not reachable" in err


@pytest.mark.parametrize(
    ("command", "variable"),
    [
        (["token", "--role", "admin", "--org", "la-digital"], "SIGNPOST_DATA_DIR"),
        (["catalogue", "import", "feed.json"], "SIGNPOST_DATA_DIR"),  # with a development admin token
        (["run"], "SIGNPOST_DATA_DIR"),
        (["token", "--role", "admin", "--org", "la-digital"], "SIGNPOST_AUTH_DEV_KEY_FILE"),
    ],
)
def test_a_data_folder_that_is_a_file_is_named_with_exit_code_2(
    command: list[str],
    variable: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    a_file = tmp_path / "a-file"
    a_file.touch()
    path = a_file if variable == "SIGNPOST_DATA_DIR" else a_file / "signing-key.pem"
    monkeypatch.setenv(variable, str(path))
    # Should `run` go on regardless, it starts no servers and leaves pytest's signal handlers alone.
    monkeypatch.setenv("SIGNPOST_KAFKA_BOOTSTRAP", nowhere())
    monkeypatch.setenv("SIGNPOST_MONGODB_URL", f"mongodb://{nowhere()}")
    monkeypatch.setattr(signal, "signal", lambda *_: None)
    assert main(command) == 2
    assert capsys.readouterr().err == f"signpost: cannot use {variable}={path}: Not a directory\n"
