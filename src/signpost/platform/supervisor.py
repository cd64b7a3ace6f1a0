"""`signpost run`: the whole platform on one machine, each service its own process.

Starts the embedded servers for whatever URL is not configured, creates the topics,
starts intake, routing and analytics, and waits for them to be ready. On Ctrl-C or
SIGTERM it stops everything within STOP_BUDGET_S; if any child dies it says which
and why, and stops the rest rather than run half a platform.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Sequence
from types import FrameType

from signpost.shared.area import DatabaseOfAnotherArea
from signpost.shared.auth.principal import Role
from signpost.shared.settings import SERVICE_NAMES, ServiceName, Settings

from signpost.platform.control import Services, control_socket
from signpost.platform.datadir import AnotherRun, run_lock
from signpost.platform.devtokens import demo_tokens
from signpost.platform.embedded import (
    TANSU_CLIENT_SETTINGS,
    EmbeddedServer,
    EmbeddedUnavailable,
    start_kafka,
    start_mongodb,
)
from signpost.platform.processes import ManagedProcess, port_is_open, stop_all

STOP_BUDGET_S = 10.0
SERVICE_STOP_SHARE_S = 6.0  # services first (they drain), the servers get the rest
READY_TIMEOUT_S = 90.0
SERVICE_APPS: dict[ServiceName, str] = {
    "intake": "signpost.intake.app:create_app",
    "routing": "signpost.routing.app:create_app",
    "analytics": "signpost.analytics.app:create_app",
}


class _StopRequested(Exception):
    pass


class _ServiceFailed(Exception):
    """A service died or was not ready during start-up (not an embedded server's failure)."""


def run_platform(settings: Settings, *, when_ready: Callable[[threading.Event], object] | None = None) -> int:
    """Run until a signal or a child's death; returns the exit code for the command.

    `when_ready` (e.g. the demo) runs in a background thread once every service is ready, given
    an event set once the platform begins to stop; the platform keeps running after it returns. Raises PathUnusable, before starting anything, if the
    data directory cannot be used; refuses to start while another run uses it.
    """
    try:
        with run_lock(settings):
            return _supervise(settings, when_ready)
    except AnotherRun as exc:
        _say(f"cannot start: {exc}")
        return 1


def _supervise(settings: Settings, when_ready: Callable[[threading.Event], object] | None) -> int:
    stopping: list[int] = []
    platform_stopping = threading.Event()

    def request_stop(signum: int, _: FrameType | None) -> None:
        stopping.append(signum)

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)

    servers: list[EmbeddedServer] = []
    services: list[ManagedProcess] = []
    env: dict[str, str] = {}
    supervised = Services(
        lambda name: _start_service(name, env),
        lambda name: _is_ready(f"{settings.local_url(name)}/readyz"),
        stop_timeout_s=SERVICE_STOP_SHARE_S,
        ready_timeout_s=READY_TIMEOUT_S,
        say=_say,
    )
    try:
        busy = [
            f"{name} port {settings.port_of(name)}"
            for name in SERVICE_NAMES
            if port_is_open(settings.host, settings.port_of(name))
        ]
        if busy:
            _say(
                f"cannot start: {', '.join(busy)} already in use on {settings.host}; "
                "stop what holds it or set SIGNPOST_<SERVICE>_PORT"
            )
            return 1
        started_env, servers = _start_servers(settings)
        env.update(started_env)
        services = supervised.start_all()
        _wait_for_services(settings, services, stopping)
        with control_socket(settings, supervised) as no_control:
            _announce(settings, servers, no_control)
            if when_ready is not None:
                threading.Thread(
                    target=when_ready, args=(platform_stopping,), name="when-ready", daemon=True
                ).start()
            while not stopping:
                watched = (*supervised.watched(), *(srv.process for srv in servers))
                dead = [child for child in watched if child.exit_code() is not None]
                if dead:
                    for child in dead:
                        _say(f"{child.name} {child.describe_exit()}; stopping the rest of the platform")
                    return 1
                supervised.start_requested()
                time.sleep(0.2)
            _say(f"received {signal.Signals(stopping[0]).name}; stopping")
            return 0
    except _StopRequested:
        _say("stopping before start-up finished")
        return 0
    except EmbeddedUnavailable as exc:
        _say(f"cannot start the embedded servers: {exc}")
        return 1
    except _ServiceFailed as exc:
        _say(f"cannot start the platform: {exc}")
        return 1
    except DatabaseOfAnotherArea as exc:  # from the migration it applies as it starts
        _say(f"cannot start: {exc}")
        return 1
    except socket.gaierror as exc:
        _say(f"cannot start: SIGNPOST_HOST={settings.host!r} does not resolve ({exc.strerror})")
        return 1
    finally:
        platform_stopping.set()
        started = time.monotonic()
        services = supervised.every()  # with any a person restarted
        stop_all(services, timeout_s=SERVICE_STOP_SHARE_S)
        stop_all([srv.process for srv in servers], timeout_s=STOP_BUDGET_S - (time.monotonic() - started))
        if services or servers:
            _say(f"stopped in {time.monotonic() - started:.1f} s")


def run_service(settings: Settings, service: ServiceName) -> int:
    """One service in this process (what a container runs)."""
    import uvicorn

    settings.require_servers()
    config = uvicorn.Config(
        SERVICE_APPS[service],
        factory=True,
        host=settings.host,
        port=settings.port_of(service),
        log_config=None,  # structlog owns logging
        access_log=False,
        timeout_graceful_shutdown=max(1, round(settings.shutdown_budget.http_s)),
    )
    uvicorn.Server(config).run(sockets=every_address_sockets(settings.host, settings.port_of(service)))
    return 0


def every_address_sockets(host: str, port: int) -> list[socket.socket] | None:
    """For '::', a socket that takes IPv4 too, as every address means (and `Settings.local_url`
    reaches it on 127.0.0.1): asyncio binds '::' to IPv6 alone. None: uvicorn binds `host` itself."""
    if host != "::":
        return None
    listening = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listening.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    listening.bind(("::", port))
    return [listening]


def _start_servers(settings: Settings) -> tuple[dict[str, str], list[EmbeddedServer]]:
    env = dict(os.environ)
    env["SIGNPOST_DATA_DIR"] = str(settings.data_dir.resolve())  # one dev signing key for all
    # Services must stop within this supervisor's share of the stop budget, not a pod's.
    env["SIGNPOST_SHUTDOWN_GRACE_S"] = str(SERVICE_STOP_SHARE_S - 1)
    if settings.log_format == "auto" and sys.stdout.isatty():
        env["SIGNPOST_LOG_FORMAT"] = "console"  # children write to a pipe, a person reads a terminal
    servers: list[EmbeddedServer] = []
    if not settings.kafka_bootstrap:
        kafka = start_kafka(port=settings.embedded_kafka_port)
        servers.append(kafka)
        env.update(TANSU_CLIENT_SETTINGS, SIGNPOST_KAFKA_BOOTSTRAP=kafka.url)
    if not settings.mongodb_url:
        mongodb = start_mongodb(
            data_dir=settings.data_dir.resolve() / "mongodb", port=settings.embedded_mongodb_port
        )
        servers.append(mongodb)
        env["SIGNPOST_MONGODB_URL"] = mongodb.url
    resolved = settings.model_copy(
        update={
            "kafka_bootstrap": env["SIGNPOST_KAFKA_BOOTSTRAP"],
            "mongodb_url": env["SIGNPOST_MONGODB_URL"],
        }
    )
    # What `signpost migrate` does for a deployment (topics, indexes, backfills a release needs),
    # so a data folder kept from an earlier release is brought up to date as it starts.
    from signpost.platform.migrate import migrate_at_start  # it imports this module's SERVICE_APPS

    asyncio.run(migrate_at_start(resolved))
    return env, servers


def _start_service(name: ServiceName, env: dict[str, str]) -> ManagedProcess:
    argv = [sys.executable, "-m", "signpost.platform.cli", "run", "--service", name]
    return ManagedProcess(name, argv, env=env).start()


def _wait_for_services(settings: Settings, services: Sequence[ManagedProcess], stopping: list[int]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    waiting = list(services)
    while waiting:
        if stopping:
            raise _StopRequested
        for service in list(waiting):
            if service.exit_code() is not None:
                raise _ServiceFailed(f"{service.name} {service.describe_exit()} during start-up")
            if _is_ready(f"{settings.local_url(service.name)}/readyz"):  # type: ignore[arg-type]
                waiting.remove(service)
        if time.monotonic() > deadline:
            raise _ServiceFailed(f"not ready within {READY_TIMEOUT_S:.0f} s: {[s.name for s in waiting]}")
        time.sleep(0.2)


def _is_ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def _announce(settings: Settings, servers: Sequence[EmbeddedServer], no_control: str | None) -> None:
    lines = ["", "Signpost is running:"]
    for name in SERVICE_NAMES:
        base = settings.local_url(name)
        lines.append(f"  {name:<9} {base}   (API docs: {base}/docs)")
    kafka = next((s for s in servers if s.process.name == "kafka"), None)
    mongodb = next((s for s in servers if s.process.name == "mongodb"), None)
    lines.append(
        f"  kafka     {kafka.url}  embedded Tansu, memory only: its log is gone when it stops"
        if kafka
        else f"  kafka     {settings.kafka_bootstrap}"
    )
    lines.append(
        f"  mongodb   {mongodb.url}  embedded SecantusDB, data in {settings.data_dir.resolve() / 'mongodb'}"
        if mongodb
        else "  mongodb   (SIGNPOST_MONGODB_URL)"
    )
    dashboard = f"{settings.local_url('analytics')}/dashboard/"
    if not settings.auth_issuer:
        tokens = demo_tokens(settings)
        lines.append("Demo bearer tokens (development issuer; `signpost token --role R --org O` makes more):")
        for role, organisation, token in tokens:
            lines.append(f"  {role.value:<12} {organisation:<22} {token}")
        # The token rides in the fragment, which browsers never send to a server.
        by_role = {role: token for role, _, token in tokens}
        lines.append(f"Dashboard, as the analyst: {dashboard}#token={by_role[Role.ANALYST]}")
        lines.append(f"Ops view, as ops:          {dashboard}ops#token={by_role[Role.OPS]}")
    else:
        lines.append(f"Dashboard: {dashboard} (sign in with a token from the identity provider)")
    lines.append(
        f"`signpost service stop|start SERVICE` is unavailable: {no_control}"
        if no_control
        else "`./signpost service stop routing` in another terminal (from this folder) stops one service "
        "(its lag grows in the ops view); `./signpost service start routing` starts it again."
    )
    lines.append("Press Ctrl-C to stop.")
    _say("\n".join(lines))


def _say(message: str) -> None:
    print(f"signpost  | {message}", flush=True)
