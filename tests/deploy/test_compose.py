"""docker-compose.yml checked without Docker: hostnames, ports, topics, secrets and settings line up."""

from __future__ import annotations

import base64
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
import yaml
from signpost.shared.settings import SERVICE_NAMES, ServiceName, Settings

from tests.deploy.manifests import ROOT, compose, compose_variables, env_file, filled_in

COMPOSE = compose()
SERVICES: dict[str, Any] = COMPOSE["services"]
EXAMPLE_ENV = env_file(ROOT / ".env.example")
ENV = filled_in(EXAMPLE_ENV)


def interpolate(value: str) -> str:
    """Compose's `${NAME:?message}`, from the committed example env file as an operator fills it in."""
    return re.sub(r"\$\{(\w+):\?[^}]*\}", lambda match: ENV[match.group(1)], value)


def environment(service: str) -> dict[str, str]:
    return {key: interpolate(str(value)) for key, value in SERVICES[service]["environment"].items()}


def settings_of(service: str) -> Settings:
    values: dict[str, Any] = {
        key.removeprefix("SIGNPOST_").lower(): value
        for key, value in environment(service).items()
        if key.startswith("SIGNPOST_")
    }
    return Settings(_env_file=None, **values)


def seconds(duration: str) -> float:
    match = re.fullmatch(r"(\d+)s", duration)
    assert match, f"write durations in seconds, not {duration!r}"
    return float(match.group(1))


@pytest.mark.parametrize("service", SERVICE_NAMES)
def test_each_service_runs_itself_in_production_against_compose_hosts(service: str) -> None:
    definition = SERVICES[service]
    assert definition["command"] == ["run", "--service", service]
    assert definition["build"]["dockerfile"] == "deploy/Dockerfile"
    assert (ROOT / definition["build"]["dockerfile"]).is_file()
    settings = settings_of(service)  # also proves production settings validate
    assert settings.environment == "production" and settings.kafka_idempotence
    host, port = settings.kafka_bootstrap.split(":")  # type: ignore[union-attr]
    advertised = SERVICES["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"]
    assert host in SERVICES and advertised == f"PLAINTEXT://{host}:{port}"
    mongo = urlsplit(settings.mongodb_url)
    assert mongo.hostname == "mongodb" and mongo.port == 27017
    assert "replicaSet=rs0" in mongo.query and "authSource=admin" in mongo.query
    assert SERVICES["mongodb"]["command"][:2] == ["--replSet", "rs0"]


@pytest.mark.parametrize("service", SERVICE_NAMES)
def test_ports_and_health_checks_match_the_settings(service: ServiceName) -> None:
    settings = settings_of(service)
    port = settings.port_of(service)
    published = SERVICES[service]["ports"]
    assert len(published) == 1 and published[0].endswith(f":{port}")
    assert SERVICES[service]["healthcheck"]["test"] == [
        "CMD",
        "signpost",
        "health",
        "--service",
        service,
        "--ready",
    ]
    assert settings.host == "0.0.0.0"


def test_every_published_port_is_on_loopback_only() -> None:
    # Plain HTTP, and /metrics (exact counts) has no login: only a proxy on this host reaches them.
    for name, definition in SERVICES.items():
        for port in definition.get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{name} publishes {port} on every interface"


def test_two_routing_replicas_share_the_consumer_group_without_port_clashes() -> None:
    replicas = SERVICES["routing"]["deploy"]["replicas"]
    assert replicas == 2
    _, host_range, _ = SERVICES["routing"]["ports"][0].split(":")
    first, last = (int(port) for port in host_range.split("-"))
    assert last - first + 1 == replicas
    assert replicas <= settings_of("routing").topic_partitions  # each replica gets partitions


def test_start_order_waits_for_dependencies() -> None:
    for service in SERVICE_NAMES:
        assert SERVICES[service]["depends_on"] == {"migrate": {"condition": "service_completed_successfully"}}
        assert SERVICES[service]["restart"] == "unless-stopped"
    assert SERVICES["migrate"]["depends_on"] == {
        "kafka": {"condition": "service_healthy"},
        "mongodb-init": {"condition": "service_completed_successfully"},
    }
    assert SERVICES["mongodb-init"]["depends_on"] == {"mongodb": {"condition": "service_healthy"}}
    assert SERVICES["mongodb"]["depends_on"] == {
        "mongodb-keyfile": {"condition": "service_completed_successfully"}
    }
    for one_shot in ("migrate", "mongodb-init", "mongodb-keyfile"):
        assert SERVICES[one_shot]["restart"] == "no"


def test_kafka_cluster_id_is_a_uuid_as_kraft_requires() -> None:
    cluster_id = SERVICES["kafka"]["environment"]["CLUSTER_ID"]
    assert len(base64.urlsafe_b64decode(cluster_id + "==")) == 16


def test_services_and_migrate_create_topics_for_a_single_broker() -> None:
    assert SERVICES["migrate"]["command"] == ["migrate"]
    for service in (*SERVICE_NAMES, "migrate"):  # whichever reaches Kafka first creates them
        assert settings_of(service).topic_replication_factor == 1
    kafka = SERVICES["kafka"]["environment"]
    assert kafka["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft, no ZooKeeper
    assert kafka["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert kafka["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == 1


def write_keyfile(key: str, directory: Path) -> subprocess.CompletedProcess[str]:
    """mongodb-keyfile's script, as compose hands it to the image's /bin/sh, writing into `directory`."""
    (script,) = SERVICES["mongodb-keyfile"]["command"]
    script = script.replace("$$", "$").replace("/keyfile/", f"{directory}/")
    stubs = directory / "bin"  # chown to mongod's user needs root; the check and the write do not
    stubs.mkdir(exist_ok=True)
    (stubs / "chown").write_text("#!/bin/sh\n")
    (stubs / "chown").chmod(0o755)
    env = {**os.environ, "PATH": f"{stubs}:{os.environ['PATH']}", "MONGODB_REPLICA_SET_KEY": key}
    return subprocess.run(["/bin/sh", "-c", script], env=env, capture_output=True, text=True)


def test_the_replica_set_key_from_the_example_command_reaches_the_keyfile(tmp_path: Path) -> None:
    example = (ROOT / ".env.example").read_text()
    (command,) = re.findall(r'python3 -c "(.*token_bytes.*)"', example)
    key = subprocess.run([sys.executable, "-c", command], capture_output=True, text=True, check=True)
    written = write_keyfile(key.stdout.strip(), tmp_path)
    assert written.returncode == 0, written.stderr
    assert (tmp_path / "key").read_text() == key.stdout.strip()


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        ("p3Kx-vQ_9aZ", "only base64 characters"),  # secrets.token_urlsafe's alphabet
        ("a key with spaces", "only base64 characters"),
        ("abc", "6 to 1024 characters"),
        ("A" * 1025, "6 to 1024 characters"),
        (EXAMPLE_ENV["MONGODB_REPLICA_SET_KEY"], "placeholder"),
    ],
)
def test_a_key_mongod_would_refuse_stops_compose_naming_the_variable(
    key: str, problem: str, tmp_path: Path
) -> None:
    written = write_keyfile(key, tmp_path)
    assert written.returncode != 0
    assert "MONGODB_REPLICA_SET_KEY" in written.stderr and problem in written.stderr
    assert not (tmp_path / "key").exists()


def test_mongodb_requires_authentication_and_signpost_has_its_own_user() -> None:
    command = SERVICES["mongodb"]["command"]
    assert command[command.index("--keyFile") + 1] == "/etc/mongodb-keyfile/key"
    assert "mongodb-keyfile:/etc/mongodb-keyfile:ro" in SERVICES["mongodb"]["volumes"]
    assert "mongodb-keyfile:/keyfile" in SERVICES["mongodb-keyfile"]["volumes"]
    root = SERVICES["mongodb"]["environment"]
    assert root["MONGO_INITDB_ROOT_USERNAME"].startswith("${MONGODB_ROOT_USERNAME:?")
    assert root["MONGO_INITDB_ROOT_PASSWORD"].startswith("${MONGODB_ROOT_PASSWORD:?")

    init = environment("mongodb-init")
    settings = settings_of("intake")
    url = urlsplit(settings.mongodb_url)
    assert init["SIGNPOST_MONGODB_USER"] == url.username
    assert init["SIGNPOST_MONGODB_PASSWORD"] == unquote(url.password or "")
    assert init["SIGNPOST_DATABASES"].split(",") == [settings.database_name(s) for s in SERVICE_NAMES]
    assert init["MONGODB_REPLICA_SET"] == "rs0" and init["MONGODB_HOST"] == "mongodb:27017"
    script = "./deploy/compose/mongodb-init.js:/mongodb-init.js:ro"
    assert script in SERVICES["mongodb-init"]["volumes"]
    assert (ROOT / "deploy" / "compose" / "mongodb-init.js").is_file()


def test_mongodb_is_healthy_only_when_reachable_as_mongodb_init_reaches_it() -> None:
    probe = SERVICES["mongodb"]["healthcheck"]["test"]
    assert probe[:2] == ["CMD", "mongosh"]
    # Not localhost: the image's first-start mongod listens there alone, then restarts.
    assert probe[probe.index("--host") + 1] == environment("mongodb-init")["MONGODB_HOST"]


def test_stopping_gives_services_their_whole_shutdown_budget() -> None:
    for service in (*SERVICE_NAMES, "migrate"):
        grace = seconds(SERVICES[service]["stop_grace_period"])
        assert grace > settings_of(service).shutdown_grace_s


def test_durable_volumes_for_kafka_and_mongodb() -> None:
    assert "kafka-data:/var/lib/kafka/data" in SERVICES["kafka"]["volumes"]
    assert SERVICES["kafka"]["environment"]["KAFKA_LOG_DIRS"] == "/var/lib/kafka/data"
    assert "mongodb-data:/data/db" in SERVICES["mongodb"]["volumes"]
    assert {"kafka-data", "mongodb-data", "mongodb-keyfile", "prometheus-data"} == set(COMPOSE["volumes"])


def test_secrets_come_from_an_env_file_that_is_not_committed() -> None:
    assert compose_variables() == set(EXAMPLE_ENV), "every ${VAR} in compose is in .env.example, and no more"
    for service in SERVICE_NAMES:
        for name in ("SIGNPOST_PSEUDONYM_KEY", "SIGNPOST_AUTH_ISSUER", "SIGNPOST_AUTH_JWKS_URL"):
            assert SERVICES[service]["environment"][name].startswith(f"${{{name}:?")
    assert ".env" in (ROOT / ".gitignore").read_text().split()
    assert ".env" in (ROOT / ".dockerignore").read_text().split()


def test_optional_profiles_for_kafka_ui_and_monitoring() -> None:
    assert SERVICES["kafka-ui"]["profiles"] == ["kafka-ui"]
    assert SERVICES["kafka-ui"]["environment"]["KAFKA_CLUSTERS_0_BOOTSTRAPSERVERS"] == (
        settings_of("intake").kafka_bootstrap
    )
    assert SERVICES["prometheus"]["profiles"] == ["monitoring"]
    profiled = {name for name, definition in SERVICES.items() if "profiles" in definition}
    assert profiled == {"kafka-ui", "prometheus"}


def test_prometheus_scrapes_every_replica_of_every_service() -> None:
    assert "./deploy/prometheus.yml:/etc/prometheus/prometheus.yml:ro" in SERVICES["prometheus"]["volumes"]
    config = yaml.safe_load((ROOT / "deploy" / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    for service in SERVICE_NAMES:
        job = jobs[service]
        assert job["metrics_path"] == "/metrics"
        (discovery,) = job["dns_sd_configs"]
        assert discovery["names"] == [service] and discovery["type"] == "A"
        assert discovery["port"] == settings_of(service).port_of(service)
