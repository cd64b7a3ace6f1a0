"""`signpost run` started as a person starts it, for tests that drive the whole platform."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from signpost.platform.processes import free_port


@dataclass
class RunningPlatform:
    process: subprocess.Popen[str]
    marker: str
    ports: dict[str, int]
    output: Path

    def url(self, service: str, path: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}{path}"

    def lines(self) -> str:
        return self.output.read_text()

    def demo_token(self, role: str, organisation: str) -> str:
        """A token `signpost run` printed, as a person would copy it."""
        match = re.search(rf"^  {role} +{organisation} +(\S+)$", self.lines(), re.MULTILINE)
        assert match, self.lines()
        return match.group(1)

    def processes(self) -> list[int]:
        """Every live process started by this run (they all inherit its marker variable)."""
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                environ = (entry / "environ").read_bytes()
                state = (entry / "stat").read_text().split()[2]
            except OSError:
                continue
            if f"SIGNPOST_TEST_RUN={self.marker}".encode() in environ and state != "Z":
                found.append(int(entry.name))
        return found


def request(
    url: str, body: dict[str, Any] | None = None, token: str | None = None, **extra: str
) -> tuple[int, Any]:
    """`extra` headers by name, with underscores for dashes (`x_correlation_id=...`)."""
    data = json.dumps(body).encode() if body is not None else None
    headers = {"content-type": "application/json", **{k.replace("_", "-"): v for k, v in extra.items()}}
    if token:
        headers["authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url, data=data, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def wait_for(predicate: Any, *, timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"{what} not reached within {timeout_s} s")


@contextmanager
def running_platform(tmp_path: Path, *args: str, **settings: str) -> Iterator[RunningPlatform]:
    """`signpost run ARGS` on free ports with embedded servers; `settings` are extra SIGNPOST_* values."""
    ports = {name: free_port() for name in ("intake", "routing", "analytics", "kafka", "mongodb")}
    marker = uuid.uuid4().hex
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"SIGNPOST_KAFKA_BOOTSTRAP", "SIGNPOST_MONGODB_URL"}  # embedded, always
    }
    env.update(
        SIGNPOST_TEST_RUN=marker,
        SIGNPOST_INTAKE_PORT=str(ports["intake"]),
        SIGNPOST_ROUTING_PORT=str(ports["routing"]),
        SIGNPOST_ANALYTICS_PORT=str(ports["analytics"]),
        SIGNPOST_EMBEDDED_KAFKA_PORT=str(ports["kafka"]),
        SIGNPOST_EMBEDDED_MONGODB_PORT=str(ports["mongodb"]),
        SIGNPOST_DATA_DIR=str(tmp_path / "data"),
    )
    env.update({f"SIGNPOST_{name.upper()}": value for name, value in settings.items()})
    output = tmp_path / "run.log"
    with output.open("w") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "signpost.platform.cli", "run", *args],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            text=True,
        )
    running = RunningPlatform(process, marker, ports, output)
    try:
        wait_for(
            lambda: "Signpost is running" in running.lines() or process.poll() is not None,
            timeout_s=120,
            what="start-up",
        )
        assert process.poll() is None, running.lines()
        yield running
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
