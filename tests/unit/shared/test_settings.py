from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from signpost.shared.settings import Settings

PRODUCTION: dict[str, object] = {
    "environment": "production",
    "kafka_bootstrap": "kafka:9092",
    "mongodb_url": "mongodb://m/?replicaSet=rs0",
    "topic_replication_factor": 3,
    "pseudonym_key": "an-areas-own-secret-too-long-to-guess",
    "front_door_phone": "0117 496 0000",
    "auth_issuer": "https://login.area.test",
    "auth_jwks_url": "https://login.area.test/jwks",
}


def make(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)


def test_development_defaults_leave_servers_to_the_embedded_runtime() -> None:
    settings = make()
    assert settings.kafka_bootstrap is None and settings.mongodb_url is None
    assert (settings.intake_port, settings.routing_port, settings.analytics_port) == (8001, 8002, 8003)
    assert settings.data_dir == Path(".signpost")


def test_reads_signpost_prefixed_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIGNPOST_KAFKA_BOOTSTRAP", "kafka:9092")
    monkeypatch.setenv("SIGNPOST_INTAKE_PORT", "9001")
    monkeypatch.setenv("SIGNPOST_KAFKA_IDEMPOTENCE", "false")
    settings = Settings()
    assert settings.kafka_bootstrap == "kafka:9092"
    assert settings.intake_port == 9001
    assert settings.kafka_idempotence is False


def test_production_refuses_unsafe_defaults_and_names_each_problem() -> None:
    with pytest.raises(ValidationError) as caught:
        make(environment="production", kafka_idempotence=False)
    message = str(caught.value)
    assert "SIGNPOST_KAFKA_BOOTSTRAP" in message
    assert "SIGNPOST_MONGODB_URL" in message
    assert "SIGNPOST_KAFKA_IDEMPOTENCE" in message
    assert "SIGNPOST_PSEUDONYM_KEY" in message
    assert "SIGNPOST_FRONT_DOOR_PHONE" in message
    assert "SIGNPOST_AUTH_ISSUER" in message
    assert "SIGNPOST_TOPIC_REPLICATION_FACTOR" in message


def test_production_needs_the_replication_factor_named_even_when_it_is_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert make().topic_replication_factor == 1  # development: the embedded broker
    unset = {name: value for name, value in PRODUCTION.items() if name != "topic_replication_factor"}
    with pytest.raises(ValidationError, match="SIGNPOST_TOPIC_REPLICATION_FACTOR must be set"):
        make(**unset)
    monkeypatch.setenv("SIGNPOST_TOPIC_REPLICATION_FACTOR", "1")  # a single broker, said so
    assert make(**unset).topic_replication_factor == 1


def test_production_with_servers_is_accepted() -> None:
    settings = make(**PRODUCTION)
    assert settings.require_servers() == ("kafka:9092", "mongodb://m/?replicaSet=rs0")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("intake_port", 70000),
        ("tenant", "no spaces allowed"),
        ("topic_prefix", "bad/prefix"),
        ("topic_replication_factor", 0),
        ("log_format", "xml"),
        ("reconcile_after_s", 0),
        ("reconcile_interval_s", -1),
    ],
)
def test_invalid_values_are_refused(field: str, value: object) -> None:
    with pytest.raises(ValidationError) as caught:
        make(**{field: value})
    assert caught.value.errors()[0]["loc"] == (field,)


def test_a_service_alone_needs_both_urls() -> None:
    with pytest.raises(ValueError, match="SIGNPOST_KAFKA_BOOTSTRAP and SIGNPOST_MONGODB_URL"):
        make().require_servers()


def test_request_timeout_must_outlast_a_group_join() -> None:
    with pytest.raises(ValidationError, match="must exceed SIGNPOST_KAFKA_SESSION_TIMEOUT_MS"):
        make(kafka_request_timeout_ms=5000, kafka_session_timeout_ms=6000)


def test_the_development_key_lives_in_the_data_dir_unless_named() -> None:
    assert make(data_dir=Path("d")).dev_key_file == Path("d/dev-issuer/signing-key.pem")
    assert make(auth_dev_key_file=Path("k.pem")).dev_key_file == Path("k.pem")


def test_an_identity_provider_needs_both_its_issuer_and_its_keys() -> None:
    with pytest.raises(ValidationError, match="set both, or neither"):
        make(auth_issuer="https://login.example.gov.uk")
    with pytest.raises(ValidationError, match="set both, or neither"):
        make(auth_jwks_url="https://login.example.gov.uk/jwks")


@pytest.mark.parametrize(
    ("field", "url"),
    [
        ("auth_issuer", "http://login.area.test"),
        ("auth_jwks_url", "http://login.area.test/jwks"),
        ("auth_jwks_url", "/realms/signpost/certs"),
        ("auth_issuer", "login.area.test"),
        ("auth_jwks_url", "https://"),
    ],
)
def test_production_trusts_an_identity_provider_only_over_https(field: str, url: str) -> None:
    with pytest.raises(ValidationError) as caught:
        make(**{**PRODUCTION, field: url})
    assert f"SIGNPOST_{field.upper()} must be an absolute https:// URL" in str(caught.value)


def test_development_may_use_a_local_identity_provider_over_http() -> None:
    settings = make(
        auth_issuer="http://127.0.0.1:8080/realms/dev", auth_jwks_url="http://127.0.0.1:8080/certs"
    )
    assert settings.auth_jwks_url == "http://127.0.0.1:8080/certs"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("pseudonym_key", "replace-with-a-long-random-secret"),
        ("pseudonym_key", "development-only-pseudonym-key"),
        ("front_door_phone", "0117 000 0000"),
        ("front_door_phone", "01632 960000"),
        ("auth_issuer", "https://login.example.gov.uk/realms/signpost"),
        ("auth_jwks_url", "https://example.org/jwks"),
        ("auth_jwks_url", "https://idp.example/jwks"),
    ],
)
def test_production_refuses_placeholders_naming_the_variable(field: str, value: str) -> None:
    with pytest.raises(ValidationError) as caught:
        make(**{**PRODUCTION, field: value})
    assert f"SIGNPOST_{field.upper()} still holds a placeholder" in str(caught.value)
    make(**{**PRODUCTION, "environment": "development", field: value})  # fine to try things out


def test_production_refuses_a_placeholder_mongodb_password() -> None:
    url = "mongodb://signpost:replace-with-a-long-url-safe-secret@m/?replicaSet=rs0"
    with pytest.raises(ValidationError, match="SIGNPOST_MONGODB_URL's password still holds a placeholder"):
        make(**{**PRODUCTION, "mongodb_url": url})


def test_production_refuses_a_development_signing_key() -> None:
    with pytest.raises(ValidationError, match="SIGNPOST_AUTH_DEV_KEY_FILE is for development"):
        make(**PRODUCTION, auth_dev_key_file=Path("k.pem"))


def test_retry_delays_read_as_a_comma_separated_list(monkeypatch: pytest.MonkeyPatch) -> None:
    assert make().retry_delays_s == (1.0, 5.0, 30.0)
    monkeypatch.setenv("SIGNPOST_RETRY_DELAYS_S", "0.5, 2,10")
    assert Settings().retry_delays_s == (0.5, 2.0, 10.0)


@pytest.mark.parametrize(
    ("values", "problem"),
    [
        ({"retry_delays_s": "1,soon"}, "retry_delays_s.1"),
        ({"retry_delays_s": "1,-2"}, "greater than 0"),
        ({"retry_delays_s": ""}, "at least 1 item"),
        ({"consumer_backoff_initial_s": 5, "consumer_backoff_max_s": 1}, "SIGNPOST_CONSUMER_BACKOFF_MAX_S"),
        ({"event_max_bytes": 10}, "event_max_bytes"),
    ],
)
def test_consumer_reliability_settings_are_checked(values: dict[str, object], problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        make(**values)


@pytest.mark.parametrize(
    "bootstrap", ["kafka:9092", "a:1,b:65535", "[::1]:9092", "10.0.0.1:9092, kafka-2:9093"]
)
def test_kafka_bootstrap_takes_host_port_pairs(bootstrap: str) -> None:
    assert make(kafka_bootstrap=bootstrap).kafka_bootstrap == bootstrap


@pytest.mark.parametrize(
    ("bootstrap", "named"),
    [
        ("localhost:abc", "'localhost:abc'"),
        ("127.0.0.1:99999", "'127.0.0.1:99999'"),
        ("127.0.0.1:0", "'127.0.0.1:0'"),
        ("[::1", "'[::1'"),
        ("::1:9092", "'::1:9092'"),
        ("kafka", "'kafka'"),  # the clients would quietly try port 9092
        ("a:1,,b:2", "''"),
    ],
)
def test_a_kafka_bootstrap_the_clients_cannot_read_is_refused_naming_the_server(
    bootstrap: str, named: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        make(kafka_bootstrap=bootstrap)
    error = caught.value.errors()[0]
    assert error["loc"] == ("kafka_bootstrap",)
    assert f"cannot read {named} as host:port with a port from 1 to 65535" in error["msg"]


@pytest.mark.parametrize(
    "url",
    [
        "mongodb://m/?replicaSet=rs0",
        "mongodb://u:p%2Fw@m1:27017,m2:27018/signpost?replicaSet=rs0",
        "mongodb://[::1]:27017,[fe80::1%25eth0]:27017",
        "mongodb://%2Ftmp%2Fmongodb-27017.sock",
        "mongodb+srv://u:p@cluster.area.test/?retryWrites=true",
        "mongodb://h/?appName=a@b",
    ],
)
def test_mongodb_urls_pymongo_reads_are_accepted(url: str) -> None:
    assert make(mongodb_url=url).mongodb_url == url


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("mongodb://u:s3cr3t-pw@127.0.0.1:99999", "cannot read '127.0.0.1:99999' as host or host:port"),
        ("mongodb://u:s3cr3t-pw@h,h2:x", "cannot read 'h2:x' as host or host:port"),
        ("mongodb://[::1", "cannot read '[::1' as host or host:port"),
        # Unescaped, a / or ? in the password misleads the split: the host is not named.
        ("mongodb://u:s3cr3t/pw@h", "cannot read one of its hosts as host or host:port"),
        ("mongodb://u:s3cr3t?pw@h", "cannot read one of its hosts as host or host:port"),
        ("http://u:s3cr3t-pw@h", "must start with mongodb:// or mongodb+srv://"),
        ("db.area.test/signpost", "must start with mongodb:// or mongodb+srv://"),
    ],
)
def test_a_mongodb_url_with_a_bad_host_is_refused_without_its_password(url: str, problem: str) -> None:
    with pytest.raises(ValidationError) as caught:
        make(mongodb_url=url)
    error = caught.value.errors()[0]
    assert error["loc"] == ("mongodb_url",)
    assert problem in error["msg"]
    assert "s3cr3t" not in error["msg"]


@pytest.mark.parametrize("url", ["http://127.0.0.1:99999", "http://routing:0/", "https://[::1]:70000"])
def test_a_service_url_with_a_port_out_of_range_is_refused(url: str) -> None:
    with pytest.raises(ValidationError) as caught:
        make(routing_url=url)
    error = caught.value.errors()[0]
    assert error["loc"] == ("routing_url",)
    assert "with a port from 1 to 65535" in error["msg"]
    assert make(routing_url="http://[::1]:8002/").routing_url == "http://[::1]:8002/"


@pytest.mark.parametrize("variable", ["DATA_DIR", "AUTH_DEV_KEY_FILE", "ORUK_TAXONOMY_MAP"])
def test_an_empty_path_is_refused_not_read_as_the_current_folder(
    variable: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(f"SIGNPOST_{variable}", "")
    with pytest.raises(ValidationError) as caught:
        Settings(_env_file=None)
    error = caught.value.errors()[0]
    assert (error["loc"], error["msg"]) == ((variable.lower(),), "Value error, must not be empty")


def test_missing_servers_names_the_variables_left_unset() -> None:
    assert make().missing_servers == ["SIGNPOST_KAFKA_BOOTSTRAP", "SIGNPOST_MONGODB_URL"]
    assert make(kafka_bootstrap="kafka:9092").missing_servers == ["SIGNPOST_MONGODB_URL"]
    assert make(kafka_bootstrap="kafka:9092", mongodb_url="mongodb://m").missing_servers == []
