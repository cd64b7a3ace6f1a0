"""One settings object for every service, read once from `SIGNPOST_*` environment variables."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import SplitResult, unquote, urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

ServiceName = Literal["intake", "routing", "analytics"]
DEVELOPMENT_PSEUDONYM_KEY = "development-only-pseudonym-key"
# Ofcom reserves 01632 960xxx for drama: a placeholder nobody can mistake for a real line.
DRAMA_PHONE_NUMBER = "01632 960000"
# The placeholders of the built-in defaults and of the committed example files (.env.example,
# deploy/k8s: secrets.env.example, mongodb.env.example, secret.example.yaml). Production
# refuses them, so an example copied without filling it in never goes live.
PLACEHOLDER_VALUES = frozenset({DEVELOPMENT_PSEUDONYM_KEY, DRAMA_PHONE_NUMBER, "0117 000 0000"})
PLACEHOLDER_PREFIX = "replace-with-"
EXAMPLE_DOMAIN_LABEL = "example"  # example.gov.uk, example.org, anything.example (RFC 2606)
SERVICE_NAMES: tuple[ServiceName, ...] = ("intake", "routing", "analytics")
RetryDelay = Annotated[float, Field(gt=0, le=3600)]
# A host (a name, an IPv4 address or a bracketed IPv6 one) and maybe a port: checked here, where the
# variable can be named, because the clients fail on a bad one with a bare ValueError or OverflowError.
ADDRESS = re.compile(r"(?:\[[0-9A-Fa-f:.]+(?:%[\w.-]+)?\]|[^\s\[\]:,/?#@%]+)(?::(?P<port>[0-9]{1,5}))?")
PORT_RULE = "a port from 1 to 65535 (an IPv6 address in brackets)"


class Settings(BaseSettings):
    """Runtime configuration.

    `kafka_bootstrap` and `mongodb_url` left unset mean "embedded": `signpost run`
    starts Tansu and SecantusDB and passes their URLs to the services it starts.
    A service itself always needs both.
    """

    model_config = SettingsConfigDict(env_prefix="SIGNPOST_", extra="ignore", frozen=True)

    environment: Literal["development", "production"] = "development"
    tenant: str = Field(
        default="E06000023",
        pattern=r"^[A-Za-z0-9_-]{1,32}$",
        description="The local area this deployment serves, e.g. an ONS local authority code.",
    )

    kafka_bootstrap: str | None = Field(default=None, min_length=1)
    kafka_idempotence: bool = Field(
        default=True,
        description="Idempotent producer: on for Apache Kafka; the embedded Tansu broker refuses it.",
    )
    kafka_session_timeout_ms: int = Field(default=6000, ge=1000, le=300_000)
    kafka_heartbeat_interval_ms: int = Field(default=500, ge=100, le=60_000)
    kafka_request_timeout_ms: int = Field(default=10_000, ge=1000, le=300_000)
    kafka_fetch_max_wait_ms: int = Field(
        default=100,
        ge=1,
        le=10_000,
        description="How long the services' event consumers let the broker hold a fetch that finds "
        "nothing. Apache Kafka answers as soon as data arrives; the embedded Tansu keeps holding "
        "the fetch, so there every hop waits up to half of this.",
    )
    topic_prefix: str = Field(default="", pattern=r"^[A-Za-z0-9._-]*$")
    topic_partitions: int = Field(default=6, ge=1, le=1000)
    topic_replication_factor: int = Field(
        default=1,
        ge=1,
        le=100,
        description="Replicas of each topic a service (at start-up) or `signpost migrate` creates: the "
        "cluster's default.replication.factor. Production needs it set: with fewer replicas than the "
        "brokers' min.insync.replicas, every publish (acks=all) fails.",
    )
    event_max_bytes: int = Field(
        default=256 * 1024,
        ge=1024,
        le=10 * 1024 * 1024,
        description="An event body larger than this is dead-lettered unread.",
    )
    retry_delays_s: Annotated[tuple[RetryDelay, ...], NoDecode] = Field(
        default=(1.0, 5.0, 30.0),
        min_length=1,
        max_length=20,
        description="Pause before each retry of an event whose handler failed, e.g. `1,5,30`; "
        "after the last retry fails the event goes to the dead-letter topic.",
    )
    consumer_backoff_initial_s: float = Field(
        default=0.5, gt=0, le=60, description="First pause while MongoDB is unreachable; doubles each time."
    )
    consumer_backoff_max_s: float = Field(
        default=10.0, gt=0, le=600, description="Longest pause while MongoDB is unreachable."
    )

    mongodb_url: str | None = Field(default=None, min_length=1)
    database_prefix: str = Field(default="signpost", pattern=r"^[A-Za-z0-9_-]{1,40}$")

    host: str = "127.0.0.1"
    intake_port: int = Field(default=8001, ge=1, le=65535)
    routing_port: int = Field(default=8002, ge=1, le=65535)
    analytics_port: int = Field(default=8003, ge=1, le=65535)
    intake_url: str | None = Field(
        default=None,
        pattern=r"^https?://[^\s/]+(/\S*)?$",
        description="Where intake answers other services (the ops view's health check); "
        "default http://HOST:INTAKE_PORT.",
    )
    routing_url: str | None = Field(default=None, pattern=r"^https?://[^\s/]+(/\S*)?$")
    analytics_url: str | None = Field(default=None, pattern=r"^https?://[^\s/]+(/\S*)?$")
    ops_sample_interval_s: float = Field(
        default=5.0,
        ge=0.1,
        le=300,
        description="How often the ops view samples watermarks and group offsets (events/s, lag history).",
    )
    analytics_batch_max: int = Field(
        default=50_000,
        ge=1,
        le=100_000,
        description="Most events analytics folds in one transaction. Batches are only as large as what "
        "is waiting, so this bounds catching up (a backlog, a rebuild), not the latency of a quiet stream. "
        "Larger batches fold more of a referral's moves into one write (at 1M events 50,000 cost the "
        "database about a fifth less CPU per event than 30,000, and 30,000 a fifth less than 10,000); "
        "each event held costs about 5 KiB, two batches at once (about 500 MiB at 50,000).",
    )
    analytics_cache_documents: int = Field(
        default=50_000,
        ge=0,
        le=10_000_000,
        description="Projection documents (referral facts, children) analytics keeps from its own writes so "
        "the next batch need not read them back; 0 turns the cache off. A few KiB each.",
    )

    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    data_dir: Path = Field(default=Path(".signpost"), description="Embedded mode's data.")
    embedded_kafka_port: int = Field(default=0, ge=0, le=65535, description="0 picks a free port.")
    embedded_mongodb_port: int = Field(default=0, ge=0, le=65535, description="0 picks a free port.")

    outbox_poll_interval_s: float = Field(
        default=5.0,
        gt=0,
        le=60,
        description="How often the outbox relay and the webhook dispatcher look for work another process "
        "queued (their own is handed over at once). Each look reads every pending item it matches, "
        "so polling often costs the database most when it is busiest.",
    )
    log_watch_interval_s: float = Field(
        default=20.0,
        gt=0,
        le=300,
        description="How often intake, routing and analytics read the referrals topic's partitions, end offsets and "
        "their group's offsets to notice a broker that lost its log while they run "
        "(`signpost.shared.logwatch`). Each round is three requests from every replica, and on the "
        "embedded broker the end offsets cost more as the log grows.",
    )
    intake_group_commit_max: int = Field(
        default=64,
        ge=1,
        le=1000,
        description="Most referral submissions intake writes in one transaction (group commit); 1 turns it off.",
    )
    intake_waiting_max: int = Field(
        default=256,
        ge=1,
        le=100_000,
        description="Most referral submissions waiting to be written at once; beyond it intake answers "
        "503 with Retry-After straight away rather than queue work its callers would give up on.",
    )
    intake_group_commit_wait_ms: float = Field(
        default=1.0,
        ge=0,
        le=100,
        description="How long intake waits for more submissions to join a group before writing it.",
    )
    shutdown_grace_s: float = Field(
        default=25.0,
        ge=2,
        le=600,
        description="How long a service may take to stop after SIGTERM; keep it below the orchestrator's "
        "kill deadline (Kubernetes terminationGracePeriodSeconds, compose stop_grace_period).",
    )
    reconcile_after_s: float = Field(
        default=300.0,
        gt=0,
        le=7 * 24 * 3600,
        description="A referral with no routing decision this long after submission has its submitted "
        "event published again; the wait before each later re-publication doubles from this.",
    )
    reconcile_interval_s: float = Field(
        default=60.0, gt=0, le=3600, description="How often intake looks for undecided referrals."
    )
    reconcile_max_backoff_s: float = Field(
        default=24 * 3600.0,
        gt=0,
        le=7 * 24 * 3600,
        description="The longest wait between two re-publications of one undecided referral.",
    )
    reconcile_max_attempts: int = Field(
        default=10,
        ge=1,
        le=1000,
        description="Re-publications of one undecided referral before intake gives up on it and counts it "
        "stuck (an ERROR log, signpost_reconciliation_stuck_referrals).",
    )

    pseudonym_key: SecretStr = Field(
        default=SecretStr(DEVELOPMENT_PSEUDONYM_KEY),
        min_length=16,
        description="Keys the hash that turns a child's identifiers into the pseudonymous child reference.",
    )
    front_door_name: str = Field(default="Children's Services Front Door (MASH)", min_length=1)
    front_door_phone: str = Field(default=DRAMA_PHONE_NUMBER, pattern=r"^[0-9 +()-]{6,20}$")
    auth_issuer: str | None = Field(default=None, min_length=1, description="The identity provider's `iss`.")
    auth_jwks_url: str | None = Field(
        default=None, min_length=1, description="Where the issuer publishes its keys."
    )
    auth_audience: str = Field(default="signpost", min_length=1)
    auth_dev_key_file: Path | None = Field(
        default=None,
        description="Development only: the local signing key `signpost token` uses (default: DATA_DIR/dev-issuer/signing-key.pem).",
    )
    rate_limit_writes_per_minute: int = Field(default=120, ge=1, le=100_000)
    webhook_timeout_s: float = Field(default=5.0, gt=0, le=60)
    webhook_retry_base_s: float = Field(
        default=2.0, gt=0, le=3600, description="First retry delay; doubles each time."
    )
    webhook_max_attempts: int = Field(
        default=35,
        ge=1,
        le=50,
        description="Attempts per delivery before it is marked failed. With the default base and delays "
        "capped at an hour, 35 span 24 h 8 min (86,894 s): a partner down for up to a day misses no event.",
    )
    webhook_delivery_retention_days: int = Field(
        default=30,
        ge=1,
        le=3650,
        description="How long a delivered or failed webhook delivery (a copy of its event and every "
        "attempt) stays in the delivery log, counted from when it was queued; pending ones are kept.",
    )
    personal_data_retention_days: float = Field(
        default=6 * 365.25,
        gt=0,
        le=100 * 365.25,
        description="How long after a referral ended (closed, escalated or unmatched, and unchanged since) "
        "intake keeps its personal data: then the child's details, the referrer's contact details and "
        "free text are erased, keeping what the referral was; audit records are deleted this long after "
        "they were made. Six years by default, as is common for children's services records.",
    )
    ehc_escalation_min_cycles: int = Field(
        default=2,
        ge=1,
        le=20,
        description="Assess-plan-do-review cycles that have not worked, at specialist level, before routing "
        "recommends an EHC needs assessment request instead of early help.",
    )
    max_request_bytes: int = Field(default=64 * 1024, ge=1024, le=10 * 1024 * 1024)
    max_import_bytes: int = Field(
        default=8 * 1024 * 1024,
        ge=1024,
        le=256 * 1024 * 1024,
        description="Body limit of the catalogue import route alone, and of each ORUK page it fetches.",
    )
    oruk_taxonomy_map: Path | None = Field(
        default=None,
        description="A JSON or YAML file mapping ORUK taxonomy terms to need codes, sectors and levels "
        "of need; unset: the map shipped with routing.",
    )
    oruk_fetch_timeout_s: float = Field(
        default=20.0,
        gt=0,
        le=300,
        description="The longest one ORUK feed request may take, its whole answer included.",
    )
    outbound_loopback_only: bool = Field(
        default=False,
        description="Contact only this machine when fetching ORUK feeds or delivering webhooks "
        "(for tests and sandboxes that must not reach other hosts).",
    )

    @field_validator("retry_delays_s", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("kafka_bootstrap")
    @classmethod
    def _host_ports(cls, value: str | None) -> str | None:
        if value is None:
            return value
        for server in (part.strip() for part in value.split(",")):
            if not _is_address(server, port_required=True):
                raise ValueError(
                    f"cannot read {server!r} as host:port with {PORT_RULE}; separate servers with commas"
                )
        return value

    @field_validator("mongodb_url")
    @classmethod
    def _mongodb_hosts(cls, value: str | None) -> str | None:
        """Refuses what pymongo would refuse with a bare ValueError (a bad host or port), in words that never
        quote the password. Not pymongo's parser: importing it costs `signpost health` a third of a second."""
        if value is None:
            return value
        scheme, separator, rest = value.partition("://")
        if not separator or scheme not in ("mongodb", "mongodb+srv"):
            raise ValueError("must start with mongodb:// or mongodb+srv://")
        # Split as pymongo does: the options, then the database, then the user name and password.
        hosts = rest.partition("?")[0].partition("/")[0].rpartition("@")[2]
        public = rest.rpartition("@")[2]  # the password, escaped or not, comes before the last @
        for host in hosts.split(","):
            if not host.endswith(".sock") and not _is_address(host, port_required=False):
                # Where an unescaped character in the password misleads the split, `host` holds part of it.
                named = repr(host) if host in public else "one of its hosts"
                hint = "; percent-encode any of :/?#[]@ in the user name and password" if "@" in rest else ""
                raise ValueError(f"cannot read {named} as host or host:port with {PORT_RULE}{hint}")
        return value

    @field_validator("intake_url", "routing_url", "analytics_url")
    @classmethod
    def _url_port(cls, value: str | None) -> str | None:
        # The pattern has checked the form; the port may still be out of range.
        host = urlsplit(value).netloc.rpartition("@")[2] if value else ""
        if value and not _is_address(host, port_required=False):
            raise ValueError(f"cannot read {host!r} as host or host:port with {PORT_RULE}")
        return value

    @field_validator("data_dir", "auth_dev_key_file", "oruk_taxonomy_map", mode="before")
    @classmethod
    def _path_not_empty(cls, value: Any) -> Any:
        if value == "":  # read as Path("."): the current folder, never what an empty variable meant
            raise ValueError("must not be empty")
        return value

    @model_validator(mode="after")
    def _backoff_cap_above_start(self) -> Settings:
        if self.consumer_backoff_max_s < self.consumer_backoff_initial_s:
            raise ValueError(
                f"SIGNPOST_CONSUMER_BACKOFF_MAX_S ({self.consumer_backoff_max_s}) must be at least "
                f"SIGNPOST_CONSUMER_BACKOFF_INITIAL_S ({self.consumer_backoff_initial_s})"
            )
        return self

    @model_validator(mode="after")
    def _join_fits_in_a_request(self) -> Settings:
        # A group join is one request that lasts up to the session timeout; a shorter
        # request timeout marks the coordinator dead on every join, forever.
        if self.kafka_request_timeout_ms <= self.kafka_session_timeout_ms:
            raise ValueError(
                f"SIGNPOST_KAFKA_REQUEST_TIMEOUT_MS ({self.kafka_request_timeout_ms}) must exceed "
                f"SIGNPOST_KAFKA_SESSION_TIMEOUT_MS ({self.kafka_session_timeout_ms})"
            )
        return self

    @model_validator(mode="after")
    def _one_identity_provider(self) -> Settings:
        # Half an identity provider would quietly fall back to the development issuer.
        if bool(self.auth_issuer) != bool(self.auth_jwks_url):
            raise ValueError(
                "SIGNPOST_AUTH_ISSUER and SIGNPOST_AUTH_JWKS_URL name the identity provider together: "
                "set both, or neither for the development issuer"
            )
        return self

    @model_validator(mode="after")
    def _refuse_unsafe_production_defaults(self) -> Settings:
        if self.environment != "production":
            return self
        problems = []
        if not self.kafka_bootstrap:
            problems.append("SIGNPOST_KAFKA_BOOTSTRAP must point at the Kafka cluster")
        if not self.mongodb_url:
            problems.append("SIGNPOST_MONGODB_URL must point at the MongoDB replica set")
        if not self.kafka_idempotence:
            problems.append("SIGNPOST_KAFKA_IDEMPOTENCE must stay on against Apache Kafka")
        if "topic_replication_factor" not in self.model_fields_set:
            problems.append(
                "SIGNPOST_TOPIC_REPLICATION_FACTOR must be set to the Kafka cluster's replication factor "
                "(3 on a three-broker cluster, 1 on a single broker)"
            )
        for name in self._placeholders():
            problems.append(
                f"{name} still holds a placeholder (a default or an example file's): set this area's own"
            )
        if not (self.auth_issuer and self.auth_jwks_url):
            problems.append("SIGNPOST_AUTH_ISSUER and SIGNPOST_AUTH_JWKS_URL must name the identity provider")
        for name, url in (
            ("SIGNPOST_AUTH_ISSUER", self.auth_issuer),
            ("SIGNPOST_AUTH_JWKS_URL", self.auth_jwks_url),
        ):
            # Tokens are checked against keys fetched from here: over plain HTTP they could be
            # anyone's (and OpenID Connect issuers are https URLs).
            if url and not _is_https_url(url):
                problems.append(f"{name} must be an absolute https:// URL, not {url!r}")
        if self.auth_dev_key_file is not None:
            problems.append(
                "SIGNPOST_AUTH_DEV_KEY_FILE is for development; production tokens come from the issuer"
            )
        if self.log_format == "console":
            problems.append("SIGNPOST_LOG_FORMAT=console is for terminals; use json or auto")
        if problems:
            raise ValueError("unsafe production settings: " + "; ".join(problems))
        return self

    def _placeholders(self) -> list[str]:
        """The variables that still hold a placeholder, by name."""
        mongodb_url = _split_url(self.mongodb_url or "")
        candidates = {
            "SIGNPOST_PSEUDONYM_KEY": self.pseudonym_key.get_secret_value(),
            "SIGNPOST_FRONT_DOOR_PHONE": self.front_door_phone,
            "SIGNPOST_AUTH_ISSUER": self.auth_issuer,
            "SIGNPOST_AUTH_JWKS_URL": self.auth_jwks_url,
            "SIGNPOST_MONGODB_URL's password": unquote(mongodb_url.password or "") if mongodb_url else None,
        }
        return [name for name, value in candidates.items() if value and _is_placeholder(value)]

    @property
    def shutdown_budget(self) -> ShutdownBudget:
        return ShutdownBudget(self.shutdown_grace_s)

    @property
    def dev_key_file(self) -> Path:
        return self.auth_dev_key_file or self.data_dir / "dev-issuer" / "signing-key.pem"

    def port_of(self, service: ServiceName) -> int:
        ports: dict[ServiceName, int] = {
            "intake": self.intake_port,
            "routing": self.routing_port,
            "analytics": self.analytics_port,
        }
        return ports[service]

    def service_url(self, service: ServiceName) -> str:
        """Base URL of a service as other services reach it."""
        explicit = {"intake": self.intake_url, "routing": self.routing_url, "analytics": self.analytics_url}
        if explicit[service]:
            return str(explicit[service]).rstrip("/")
        return self.local_url(service)

    def local_url(self, service: ServiceName) -> str:
        """Where this machine reaches a service it runs itself (`signpost run`)."""
        # A wildcard listen address is not an address to connect to ('::' takes IPv4 too).
        host = "127.0.0.1" if self.host in {"0.0.0.0", "::", ""} else self.host
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port_of(service)}"

    def database_name(self, service: ServiceName) -> str:
        return f"{self.database_prefix}_{service}"

    @property
    def missing_servers(self) -> list[str]:
        """The variables of the Kafka and MongoDB servers that are not set (the embedded ones are used)."""
        return [
            name
            for name, value in (
                ("SIGNPOST_KAFKA_BOOTSTRAP", self.kafka_bootstrap),
                ("SIGNPOST_MONGODB_URL", self.mongodb_url),
            )
            if not value
        ]

    def require_servers(self) -> tuple[str, str]:
        """The Kafka bootstrap and MongoDB URL a running service needs."""
        if missing := self.missing_servers:
            raise ValueError(
                f"{' and '.join(missing)} must be set to run a service on its own; "
                "`signpost run` without --service starts embedded servers instead"
            )
        assert self.kafka_bootstrap and self.mongodb_url
        return self.kafka_bootstrap, self.mongodb_url


def _is_address(text: str, *, port_required: bool) -> bool:
    match = ADDRESS.fullmatch(text)
    if not match or match["port"] is None:
        return bool(match) and not port_required
    return 1 <= int(match["port"]) <= 65535


def _is_placeholder(value: str) -> bool:
    """Whether `value` is a default's or an example file's placeholder rather than a deployment's own."""
    url = _split_url(value)
    host = (url.hostname if url else None) or ""
    return (
        value in PLACEHOLDER_VALUES
        or value.startswith(PLACEHOLDER_PREFIX)
        or EXAMPLE_DOMAIN_LABEL in host.split(".")
    )


def _is_https_url(text: str) -> bool:
    url = _split_url(text)
    return url is not None and url.scheme == "https" and bool(url.hostname)


def _split_url(text: str) -> SplitResult | None:
    try:
        return urlsplit(text)
    except ValueError:  # e.g. an unclosed IPv6 bracket
        return None


@dataclass(frozen=True)
class ShutdownBudget:
    """How a service spends its grace period after SIGTERM, step by step; the steps leave a margin for closing.

    1. HTTP: no new connections; requests in flight finish (uvicorn).
    2. Consumers: no new messages; handlers in flight finish and commit their offsets.
    3. Outbox: events staged by steps 1 and 2 are published (the rest go at the next start).
    """

    grace_s: float

    @property
    def http_s(self) -> float:
        return self.grace_s * 0.25

    @property
    def consumers_s(self) -> float:
        return self.grace_s * 0.40

    @property
    def outbox_s(self) -> float:
        return self.grace_s * 0.25


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
