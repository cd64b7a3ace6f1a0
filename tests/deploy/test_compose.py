"""docker-compose.yml checked without Docker: hostnames, ports, topics and settings line up."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from signpost.shared.settings import SERVICE_NAMES, Settings
from signpost.shared.topics import Topics

ROOT = Path(__file__).resolve().parents[2]
COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]


EXAMPLE_ENV = dict(
    line.split("=", 1)
    for line in (ROOT / ".env.example").read_text().splitlines()
    if line and not line.startswith("#")
)


def interpolate(value: str) -> str:
    """Compose's `${NAME:?message}`, filled from the committed example env file."""
    return re.sub(r"\$\{(\w+):\?[^}]*\}", lambda match: EXAMPLE_ENV[match.group(1)], value)


def settings_of(service: str) -> Settings:
    environment = {
        key.removeprefix("SIGNPOST_").lower(): interpolate(value)
        for key, value in SERVICES[service]["environment"].items()
    }
    return Settings(_env_file=None, **environment)  # type: ignore[call-arg]


def kafka_listener_port() -> int:
    listeners = SERVICES["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"]
    match = re.fullmatch(r"PLAINTEXT://kafka:(\d+)", listeners)
    assert match, listeners
    return int(match.group(1))


@pytest.mark.parametrize("service", SERVICE_NAMES)
def test_each_service_runs_itself_in_production_against_compose_hosts(service: str) -> None:
    definition = SERVICES[service]
    assert definition["command"] == ["run", "--service", service]
    assert definition["build"]["dockerfile"] == "deploy/Dockerfile"
    assert (ROOT / definition["build"]["dockerfile"]).is_file()
    settings = settings_of(service)  # also proves production settings validate
    assert settings.environment == "production" and settings.kafka_idempotence
    host, port = settings.kafka_bootstrap.split(":")  # type: ignore[union-attr]
    assert host in SERVICES and int(port) == kafka_listener_port()
    mongo = urlsplit(settings.mongodb_url)
    assert mongo.hostname in SERVICES and mongo.hostname == "mongodb"
    assert "replicaSet=rs0" in (mongo.query or "")
    assert "--replSet" in SERVICES["mongodb"]["command"] and "rs0" in SERVICES["mongodb"]["command"]


@pytest.mark.parametrize("service", SERVICE_NAMES)
def test_ports_and_health_checks_match_the_settings(service: str) -> None:
    port = settings_of(service).port_of(service)
    assert SERVICES[service]["ports"] == [f"{port}:{port}"]
    assert f"http://127.0.0.1:{port}/readyz" in " ".join(SERVICES[service]["healthcheck"]["test"])
    assert settings_of(service).host == "0.0.0.0"


def test_services_wait_for_topics_and_the_replica_set() -> None:
    for service in SERVICE_NAMES:
        depends = SERVICES[service]["depends_on"]
        assert depends["kafka-topics"]["condition"] == "service_completed_successfully"
        assert depends["mongodb-init"]["condition"] == "service_completed_successfully"
    assert "rs.initiate" in " ".join(SERVICES["mongodb-init"]["command"])


def test_compose_creates_exactly_the_topics_the_services_use() -> None:
    script = "\n".join(SERVICES["kafka-topics"]["command"])
    created = {
        words[1]: (int(words[2]), words[3])
        for words in (shlex.split(line) for line in script.splitlines())
        if words and words[0] == "create"
    }
    expected = {
        spec.name: (spec.partitions, spec.config["cleanup.policy"])
        for spec in Topics.from_settings(settings_of("routing")).specs()
    }
    assert created == expected
    assert SERVICES["kafka"]["environment"]["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"


def test_durable_volumes_for_kafka_and_mongodb() -> None:
    assert "kafka-data:/var/lib/kafka/data" in SERVICES["kafka"]["volumes"]
    assert "mongodb-data:/data/db" in SERVICES["mongodb"]["volumes"]
    assert set(COMPOSE["volumes"]) == {"kafka-data", "mongodb-data"}


def test_production_image_leaves_out_the_embedded_servers() -> None:
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    sync_lines = [line for line in dockerfile.splitlines() if "uv sync" in line]
    assert sync_lines and all("--no-dev" in line and "--extra" not in line for line in sync_lines)
    assert "USER signpost" in dockerfile


def test_secrets_come_from_an_env_file_that_is_not_committed() -> None:
    secret_names = {
        "SIGNPOST_PSEUDONYM_KEY",
        "SIGNPOST_FRONT_DOOR_NAME",
        "SIGNPOST_FRONT_DOOR_PHONE",
        "SIGNPOST_AUTH_ISSUER",
        "SIGNPOST_AUTH_JWKS_URL",
    }
    for service in SERVICE_NAMES:
        for name in secret_names:
            assert SERVICES[service]["environment"][name].startswith(f"${{{name}:?")
    assert secret_names <= set(EXAMPLE_ENV)
    assert ".env" in (ROOT / ".gitignore").read_text().split()
