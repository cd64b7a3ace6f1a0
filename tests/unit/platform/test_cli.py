"""`signpost` refuses bad input (exit 2) and reports a server it cannot reach (exit 1) in one line on
stderr that names the flag or setting, never with a traceback."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from signpost.shared.settings import SERVICE_NAMES, Settings

from signpost.platform import catalogue
from signpost.platform.cli import main
from signpost.platform.demo.calendar import period
from signpost.platform.demo.console import demo_command
from signpost.platform.demo.runner import DemoOptions, Endpoints, _Clock
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
        ("--intake-url", "http://127.0.0.1:99999", "the port must be from 1 to 65535, not 99999"),
        ("--minutes", "1e-300", "must be from 0.1 to 525600, not 1e-300"),
        ("--minutes", "1e300", "must be from 0.1 to 525600, not 1e300"),
        ("--rate", "1e300", "must be from 0.001 to 1000, not 1e300"),
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


def pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, password: bytes | None = None) -> bytes:
    encryption = serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)


@pytest.mark.parametrize(
    "content",
    [
        b"not a key\n",
        b"",
        pem(ec.generate_private_key(ec.SECP256R1())),
        pem(rsa.generate_private_key(public_exponent=65537, key_size=1024), password=b"secret"),
    ],
    ids=["not-pem", "empty", "ec-key", "encrypted"],
)
@pytest.mark.parametrize(
    "command",
    [["token", "--role", "admin", "--org", "la-digital"], ["catalogue", "import", "feed.json"]],
    ids=["token", "catalogue-import"],
)
def test_a_signing_key_file_holding_no_rsa_key_is_named_with_exit_code_2(
    content: bytes,
    command: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    key = tmp_path / "key.pem"
    key.write_bytes(content)
    monkeypatch.setenv("SIGNPOST_AUTH_DEV_KEY_FILE", str(key))
    assert main(command) == 2
    assert capsys.readouterr().err == (
        f"signpost: cannot use SIGNPOST_AUTH_DEV_KEY_FILE={key}: not an unencrypted RSA private key in PEM form\n"
    )


def test_a_data_folders_signing_key_holding_no_rsa_key_is_named_with_exit_code_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = tmp_path / "data" / "dev-issuer" / "signing-key.pem"
    key.parent.mkdir(parents=True)
    key.write_bytes(b"-----BEGIN PRIVATE KEY-----\ntruncated\n")
    assert main(["token", "--role", "admin", "--org", "la-digital"]) == 2
    assert capsys.readouterr().err == (
        f"signpost: cannot use SIGNPOST_DATA_DIR={tmp_path / 'data'}: {key} is not an unencrypted RSA "
        "private key in PEM form\n"
    )


@pytest.mark.parametrize(
    ("variable", "value", "problem"),
    [
        ("SIGNPOST_KAFKA_BOOTSTRAP", "localhost:abc", "cannot read 'localhost:abc' as host:port"),
        ("SIGNPOST_KAFKA_BOOTSTRAP", "[::1", "cannot read '[::1' as host:port"),
        ("SIGNPOST_MONGODB_URL", "mongodb://u:s3cr3t@127.0.0.1:99999", "cannot read '127.0.0.1:99999'"),
        ("SIGNPOST_DATA_DIR", "", "must not be empty"),
    ],
)
@pytest.mark.parametrize("command", [["dlq", "list"], ["migrate"], ["analytics", "rebuild"]])
def test_a_setting_the_servers_cannot_take_is_named_before_any_is_contacted(
    variable: str,
    value: str,
    problem: str,
    command: list[str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("SIGNPOST_KAFKA_BOOTSTRAP", nowhere())
    monkeypatch.setenv("SIGNPOST_MONGODB_URL", f"mongodb://{nowhere()}")
    monkeypatch.setenv(variable, value)
    assert main(command) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"signpost: {variable}: ") and problem in err
    assert "s3cr3t" not in err and "Traceback" not in err


@pytest.mark.parametrize(
    "argv",
    [["contract", "--out", ""], ["demo", "--feed", ""], ["catalogue", "import", ""]],
)
def test_an_empty_path_is_refused_not_read_as_the_current_folder(
    argv: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    assert "must not be empty" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_migrate_names_the_server_it_still_needs(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SIGNPOST_KAFKA_BOOTSTRAP", nowhere())
    assert main(["migrate"]) == 2
    assert (
        capsys.readouterr().err
        == "signpost: set SIGNPOST_MONGODB_URL (`signpost run` prints the embedded ones)\n"
    )


def test_the_fastest_demo_keeps_its_clock_within_datetimes_range() -> None:
    """`--referrals 1 --rate 1000` would pass a term in a millisecond: its clock would leave datetime's range
    within seconds of the demo waiting for routing's decisions."""
    options = DemoOptions(referrals=1, rate=1000)
    year = period("year")
    span = (year.end_at - year.start_at).total_seconds()
    clock = _Clock(year.start_at, span / options.real_s(1), real_start=time.monotonic() - 3600)
    assert clock.now() > year.end_at  # an hour later: past the period, still a datetime
    assert DemoOptions(minutes=2).real_s(600) == 120


@pytest.mark.parametrize(
    ("argv", "problem"),
    [
        (["demo", "--minutes", "5", "--rate", "2"], "argument --rate: not allowed with argument --minutes"),
        (["run", "--service", "intake", "--demo"], "argument --demo: not allowed with argument --service"),
        (
            ["demo", "--feed", "area.json", "--term", "spring", "--intake-url", "http://h"],
            "--feed only writes the area's feed (from --seed); it takes no --term, --intake-url",
        ),
        (["dlq", "replay", "3", "--all"], "give the offsets to replay or --all, not both"),
        (["dlq", "replay"], "give the offsets to replay (see `signpost dlq list`), or --all"),
    ],
)
def test_options_that_contradict_each_other_are_refused(
    argv: list[str],
    problem: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SIGNPOST_KAFKA_BOOTSTRAP", nowhere())  # were it contacted, exit code 1
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    assert problem in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # no feed written


def test_catalogue_import_sends_http_urls_whatever_their_case_and_refuses_other_schemes() -> None:
    assert json.loads(catalogue.request_body("HTTPS://directory.area.test/api")) == {
        "source_url": "HTTPS://directory.area.test/api"
    }
    with pytest.raises(
        catalogue.BadSource, match="the ftp:// scheme is not supported; use http:// or https://"
    ):
        catalogue.request_body("ftp://directory.area.test/feed")


def test_a_feed_holding_nan_says_where(tmp_path: Path) -> None:
    feed = tmp_path / "feed.json"
    feed.write_text('{"note": "NaN \\" -Infinity",\n "contents": [1,\n   -Infinity]}')
    with pytest.raises(catalogue.BadSource) as caught:
        catalogue.request_body(str(feed))
    assert (
        str(caught.value) == f"{feed} is not JSON: -Infinity is not a JSON value: line 3 column 4 (char 49)"
    )


def test_token_help_says_when_tokens_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    assert (
        "print a development bearer token (refused with SIGNPOST_AUTH_ISSUER set, or in production)"
        in " ".join(capsys.readouterr().out.split())
    )


def test_a_feed_reader_that_stops_early_leaves_no_traceback(tmp_path: Path) -> None:
    writer = subprocess.Popen(
        [sys.executable, "-m", "signpost.platform.cli", "demo", "--feed", "-"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert writer.stdout is not None and writer.stdout.readline().startswith(b"{")
    writer.stdout.close()  # as `| head -1` does once it has its line
    _, errors = writer.communicate(timeout=60)
    assert writer.returncode == 0, errors
    assert b"Traceback" not in errors and b"BrokenPipe" not in errors
