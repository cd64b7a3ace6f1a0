"""The platform on one machine with every process in the caller's hands, for fault tests and benchmarks.

Unlike `signpost run` (which stops everything when one child dies), each service
here is its own process that the caller may kill, pause and start again, and the
embedded servers can be paused (SIGSTOP/SIGCONT) or restarted on the same port.
Every process it signals is one it started.
"""

from __future__ import annotations

import os
import signal
import sys
import time
import urllib.request
from collections.abc import Mapping
from pathlib import Path

from signpost.shared.auth.principal import Role
from signpost.shared.settings import SERVICE_NAMES, ServiceName, Settings

from signpost.platform.devtokens import dev_token
from signpost.platform.embedded import TANSU_CLIENT_SETTINGS, EmbeddedServer, start_kafka, start_mongodb
from signpost.platform.processes import ManagedProcess, free_port, stop_all

READY_TIMEOUT_S = 90.0


class LocalCluster:
    """Embedded Tansu and SecantusDB plus intake, routing and analytics, each a separate process.

    With `kafka_bootstrap`, the services use that Apache Kafka broker (a test's container, say)
    instead of an embedded Tansu, with idempotent producers as against any Apache Kafka."""

    def __init__(
        self, workdir: Path, *, settings: Mapping[str, str] | None = None, kafka_bootstrap: str | None = None
    ) -> None:
        self.workdir = workdir
        self.kafka_bootstrap = kafka_bootstrap
        self.logs = workdir / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.ports: dict[ServiceName, int] = {name: free_port() for name in SERVICE_NAMES}
        self.kafka: EmbeddedServer | None = None
        self.mongodb: EmbeddedServer | None = None
        self.services: dict[ServiceName, ManagedProcess] = {}
        self._settings = dict(settings or {})

    # -- servers --------------------------------------------------------------------------
    def start_servers(self) -> None:
        if self.kafka_bootstrap is None:
            self.kafka = start_kafka(log_file=self.logs / "tansu.log")
        self.mongodb = start_mongodb(data_dir=self.workdir / "mongodb", log_file=self.logs / "secantus.log")

    def restart_kafka(self, *, down_s: float = 0.0) -> None:
        """Kill the broker and start a fresh one on the same port `down_s` later: memory storage, so
        every topic, offset and group is gone (what a Tansu restart does)."""
        assert self.kafka is not None
        self.kafka.process.signal(signal.SIGKILL)
        self.kafka.process.wait(5)
        time.sleep(down_s)
        self.kafka = start_kafka(port=self.kafka.port, log_file=self.logs / "tansu.log")

    @property
    def env(self) -> dict[str, str]:
        """What each service process is started with."""
        assert self.mongodb is not None, "start_servers() first"
        if self.kafka_bootstrap is not None:
            bootstrap, clients = self.kafka_bootstrap, {"SIGNPOST_KAFKA_IDEMPOTENCE": "true"}
        else:
            assert self.kafka is not None, "start_servers() first"
            bootstrap, clients = self.kafka.url, TANSU_CLIENT_SETTINGS
        env = {key: value for key, value in os.environ.items() if not key.startswith("SIGNPOST_")}
        env.update(
            clients,
            SIGNPOST_KAFKA_BOOTSTRAP=bootstrap,
            SIGNPOST_MONGODB_URL=self.mongodb.url,
            SIGNPOST_DATA_DIR=str(self.workdir / "data"),
            SIGNPOST_LOG_FORMAT="json",
            SIGNPOST_INTAKE_PORT=str(self.ports["intake"]),
            SIGNPOST_ROUTING_PORT=str(self.ports["routing"]),
            SIGNPOST_ANALYTICS_PORT=str(self.ports["analytics"]),
        )
        env.update({f"SIGNPOST_{key.upper()}": value for key, value in self._settings.items()})
        return env

    def token(self, role: Role, organisation: str) -> str:
        """A development token the services accept (they share this cluster's signing key)."""
        settings = Settings(data_dir=self.workdir / "data", tenant=self.setting("tenant"))
        return dev_token(settings, role=role, organisation=organisation)

    def setting(self, name: str) -> str:
        """A setting as the services see it: given to this cluster, or the default."""
        return self._settings.get(name) or str(Settings.model_fields[name].default)

    def database_name(self, service: ServiceName) -> str:
        return f"{self.setting('database_prefix')}_{service}"

    # -- services -------------------------------------------------------------------------
    def start_service(self, name: ServiceName) -> ManagedProcess:
        argv = [sys.executable, "-m", "signpost.platform.cli", "run", "--service", name]
        process = ManagedProcess(name, argv, env=self.env, log_file=self.logs / f"{name}.log").start()
        self.services[name] = process
        return process

    def start(self) -> None:
        """Servers, then every service, then wait until all answer /readyz."""
        self.start_servers()
        for name in SERVICE_NAMES:
            self.start_service(name)
        self.wait_ready(*SERVICE_NAMES)

    def kill(self, name: ServiceName, signum: signal.Signals = signal.SIGKILL) -> None:
        process = self.services[name]
        process.signal(signum)
        process.wait(10)

    def wait_ready(self, *names: ServiceName, timeout_s: float = READY_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout_s
        waiting = list(names)
        while waiting:
            for name in list(waiting):
                process = self.services[name]
                if process.exit_code() is not None:
                    raise RuntimeError(f"{name} {process.describe_exit()}; see {self.logs / name}.log")
                if _answers(self.url(name, "/readyz")):
                    waiting.remove(name)
            if time.monotonic() > deadline:
                raise RuntimeError(f"not ready within {timeout_s:.0f} s: {waiting}; logs in {self.logs}")
            time.sleep(0.2)

    def url(self, name: ServiceName, path: str = "") -> str:
        return f"http://127.0.0.1:{self.ports[name]}{path}"

    def stop(self) -> None:
        servers = [server.process for server in (self.kafka, self.mongodb) if server]
        for process in servers:
            process.signal(signal.SIGCONT)  # a paused server could not stop
        stop_all(list(self.services.values()), timeout_s=8)
        stop_all(servers, timeout_s=8)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False
