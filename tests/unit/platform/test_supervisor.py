"""`signpost run`'s start-up failures, with real child processes but no servers."""

from __future__ import annotations

import asyncio
import fcntl
import re
import signal
import socket
import sys
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from signpost.shared.settings import ServiceName, Settings

from signpost.platform import supervisor
from signpost.platform.embedded import EmbeddedServer, EmbeddedUnavailable, start_mongodb
from signpost.platform.processes import ManagedProcess, free_port
from tests.conftest import eventually


@pytest.fixture
def no_servers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Kafka and MongoDB as if external; services that exit with code 3 as they start."""
    monkeypatch.setattr(signal, "signal", lambda *_: None)  # keep pytest's handlers
    monkeypatch.setattr(supervisor, "_start_servers", lambda settings: ({}, []))

    def dies(name: ServiceName, env: dict[str, str]) -> ManagedProcess:
        return ManagedProcess(name, [sys.executable, "-c", "raise SystemExit(3)"]).start()

    monkeypatch.setattr(supervisor, "_start_service", dies)


def settings(tmp_path: Path, host: str) -> Settings:
    ports = {f"{name}_port": free_port() for name in ("intake", "routing", "analytics")}
    return Settings(
        host=host,
        data_dir=tmp_path,
        kafka_bootstrap="127.0.0.1:9",
        mongodb_url="mongodb://127.0.0.1:9",
        **ports,  # type: ignore[arg-type]
    )


@pytest.mark.usefixtures("no_servers")
def test_a_service_dying_at_start_is_named_and_not_blamed_on_embedded_servers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert supervisor.run_platform(settings(tmp_path, "127.0.0.1")) == 1
    out = capsys.readouterr().out
    assert "cannot start the platform: intake exited with code 3 during start-up" in out
    assert "embedded" not in out


@pytest.mark.usefixtures("no_servers")
def test_an_ipv6_wildcard_host_finds_a_port_held_on_ipv6_loopback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wildcard = settings(tmp_path, "::")
    with socket.socket(socket.AF_INET6) as held:
        held.bind(("::1", wildcard.routing_port))
        held.listen()
        assert supervisor.run_platform(wildcard) == 1
    assert (
        f"cannot start: routing port {wildcard.routing_port} already in use on ::" in capsys.readouterr().out
    )


def test_embedded_mongodb_without_a_folder_for_its_data_says_so(tmp_path: Path) -> None:
    (tmp_path / "mongodb").touch()
    with pytest.raises(
        EmbeddedUnavailable, match=re.escape(f"cannot keep its data in {tmp_path / 'mongodb'}: ")
    ):
        start_mongodb(data_dir=tmp_path / "mongodb")


@pytest.mark.usefixtures("no_servers")
def test_a_run_on_a_data_folder_another_run_uses_starts_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    started: list[Settings] = []

    def start_servers(settings: Settings) -> tuple[dict[str, str], list[EmbeddedServer]]:
        started.append(settings)
        return {}, []

    monkeypatch.setattr(supervisor, "_start_servers", start_servers)
    with (tmp_path / "run.lock").open("w") as other_run:
        fcntl.flock(other_run, fcntl.LOCK_EX)
        other_run.write("4242\n")
        other_run.flush()
        assert supervisor.run_platform(settings(tmp_path, "127.0.0.1")) == 1
    assert (
        f"cannot start: another `signpost run` (pid 4242) uses {tmp_path.resolve()}"
        in capsys.readouterr().out
    )
    assert started == []


async def test_a_service_on_every_address_answers_on_ipv4_and_ipv6_loopback() -> None:
    async def hello(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(hello, host="::", port=port, log_config=None, lifespan="off"))
    serving = asyncio.create_task(server.serve(sockets=supervisor.every_address_sockets("::", port)))
    try:

        async def started() -> bool:
            return server.started

        await eventually(started, what="serving")
        for loopback in ("127.0.0.1", "::1"):
            reader, writer = await asyncio.open_connection(loopback, port)
            writer.write(b"GET / HTTP/1.0\r\n\r\n")
            assert (await reader.readline()).startswith(b"HTTP/1.1 204"), loopback
            writer.close()
    finally:
        server.should_exit = True
        await serving
