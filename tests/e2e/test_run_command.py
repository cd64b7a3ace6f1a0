"""`signpost run` as a person runs it: embedded servers, three service processes, clean stops."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from signpost.platform.processes import free_port, port_is_open
from tests.factories import referral

REFERRAL = referral(need_codes=["SLCN"])


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


def request(url: str, body: dict[str, Any] | None = None, token: str | None = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    headers = {"content-type": "application/json"}
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


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[RunningPlatform]:
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
    output = tmp_path / "run.log"
    with output.open("w") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "signpost.platform.cli", "run"],
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


def test_run_routes_and_counts_a_referral_then_stops_cleanly(platform: RunningPlatform) -> None:
    text = platform.lines()
    for service in ("intake", "routing", "analytics"):
        assert platform.url(service, "") in text
    assert "embedded Tansu, memory only" in text and "embedded SecantusDB" in text

    submitted_at = time.monotonic()
    practitioner = platform.demo_token("practitioner", "school-ashley-primary")
    status, body = request(platform.url("intake", "/v1/referrals"), REFERRAL, practitioner)
    assert status == 201, body
    pulse = wait_for(
        lambda: (p := request(platform.url("analytics", "/v1/pulse"))[1])["by_outcome"]["routed"] == 1 and p,
        timeout_s=30,
        what="referral counted as routed",
    )
    print(f"submitted → counted in {time.monotonic() - submitted_at:.2f} s")
    assert pulse["by_need_code"] == {"SLCN": 1}
    wait_for(
        lambda: (
            request(platform.url("intake", f"/v1/referrals/{body['id']}"), token=practitioner)[1]["status"]
            == "routed"
        ),
        timeout_s=30,
        what="intake shows the referral routed",
    )
    assert "intake    | " in platform.lines() and "routing   | " in platform.lines()

    assert len(platform.processes()) >= 5  # kafka, mongodb and three services
    platform.process.send_signal(signal.SIGINT)
    assert platform.process.wait(timeout=15) == 0, platform.lines()
    assert "stopped in" in platform.lines()
    assert platform.processes() == [], "orphaned processes"
    held = [name for name, port in platform.ports.items() if port_is_open("127.0.0.1", port)]
    assert held == [], f"ports still held: {held}"


def test_a_dying_child_is_named_and_takes_the_platform_down(platform: RunningPlatform) -> None:
    routing = next(
        pid
        for pid in platform.processes()
        if b"--service\x00routing" in Path(f"/proc/{pid}/cmdline").read_bytes()
    )
    os.kill(routing, signal.SIGKILL)
    assert platform.process.wait(timeout=15) == 1
    assert "routing killed by SIGKILL; stopping the rest of the platform" in platform.lines()
    assert platform.processes() == []


def test_sigterm_also_stops_everything(platform: RunningPlatform) -> None:
    platform.process.send_signal(signal.SIGTERM)
    assert platform.process.wait(timeout=15) == 0
    assert "received SIGTERM; stopping" in platform.lines()
    assert platform.processes() == []


def test_a_service_alone_refuses_to_start_without_server_urls(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGNPOST_")}
    result = subprocess.run(
        [sys.executable, "-m", "signpost.platform.cli", "run", "--service", "intake"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert "SIGNPOST_KAFKA_BOOTSTRAP and SIGNPOST_MONGODB_URL must be set" in result.stderr


def test_bad_settings_are_reported_by_variable_name(tmp_path: Path) -> None:
    env = {**os.environ, "SIGNPOST_INTAKE_PORT": "not-a-port"}
    result = subprocess.run(
        [sys.executable, "-m", "signpost.platform.cli", "run"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "SIGNPOST_INTAKE_PORT" in result.stderr
