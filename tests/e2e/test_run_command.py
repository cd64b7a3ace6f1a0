"""`signpost run` as a person runs it: embedded servers, three service processes, clean stops."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest

from signpost.platform.processes import free_port, port_is_open
from tests.e2e.running import RunningPlatform, request, running_platform, wait_for
from tests.factories import referral

REFERRAL = referral(need_codes=["SLCN"])
PR_SET_CHILD_SUBREAPER = 36  # <linux/prctl.h>


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[RunningPlatform]:
    with running_platform(tmp_path) as running:
        yield running


def test_run_routes_and_counts_a_referral_then_stops_cleanly(platform: RunningPlatform) -> None:
    text = platform.lines()
    for service in ("intake", "routing", "analytics"):
        assert platform.url(service, "") in text
    assert "embedded Tansu, memory only" in text and "embedded SecantusDB" in text

    submitted_at = time.monotonic()
    practitioner = platform.demo_token("practitioner", "school-ashley-primary")
    status, body = request(platform.url("intake", "/v1/referrals"), REFERRAL, practitioner)
    assert status == 201, body
    admin = platform.demo_token("admin", "la-digital")  # sees small numbers unsuppressed
    pulse = wait_for(
        lambda: (
            (p := request(platform.url("analytics", "/v1/pulse"), token=admin)[1])["by_outcome"]["routed"]
            == 1
            and p
        ),
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


@contextmanager
def adopting_orphans() -> Iterator[None]:
    """This process adopts its descendants' orphans (PR_SET_CHILD_SUBREAPER): the children of a
    supervisor it killed become its own, so it can read how each ended."""
    prctl = ctypes.CDLL("libc.so.6", use_errno=True).prctl
    prctl(PR_SET_CHILD_SUBREAPER, 1)
    try:
        yield
    finally:
        prctl(PR_SET_CHILD_SUBREAPER, 0)


def test_killing_the_supervisor_leaves_nothing_running(platform: RunningPlatform) -> None:
    def every_child() -> list[int] | None:
        """kafka, mongodb and three services (a scan of /proc once missed one on a loaded machine)."""
        found = [pid for pid in platform.processes() if pid != platform.process.pid]
        return found if len(found) >= 5 else None

    children: list[int] = wait_for(every_child, timeout_s=30, what="every child listed")
    ended: dict[int, str] = {}

    def all_ended() -> bool:
        for pid in set(children) - set(ended):
            reaped, status = os.waitpid(pid, os.WNOHANG)
            if reaped:
                ended[pid] = (
                    signal.Signals(os.WTERMSIG(status)).name
                    if os.WIFSIGNALED(status)
                    else f"exit {os.WEXITSTATUS(status)}"
                )
        return len(ended) == len(children)

    with adopting_orphans():
        try:
            platform.process.kill()
            platform.process.wait()
            wait_for(all_ended, timeout_s=30, what="every child ended")
        finally:  # a child that outlived the supervisor is killed and reaped, not left behind
            for pid in set(children) - set(ended):
                with suppress(ProcessLookupError, ChildProcessError):
                    os.kill(pid, signal.SIGKILL)
                    os.waitpid(pid, 0)
    # The kernel kills every child with it (PR_SET_PDEATHSIG). Sent SIGTERM instead, Tansu or
    # SecantusDB stayed for seconds, analytics for 10-20 s, once for good beside a SecantusDB
    # deadlocked in its SIGTERM handler.
    assert ended == dict.fromkeys(children, "SIGKILL")
    assert platform.processes() == []


def test_a_second_run_on_the_same_data_folder_is_refused_and_a_killed_one_blocks_nothing(
    platform: RunningPlatform, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    embedded = {
        k: v for k, v in os.environ.items() if k not in {"SIGNPOST_KAFKA_BOOTSTRAP", "SIGNPOST_MONGODB_URL"}
    }
    ports = {f"SIGNPOST_{name}_PORT": str(free_port()) for name in ("INTAKE", "ROUTING", "ANALYTICS")}
    env = {**embedded, **ports, "SIGNPOST_DATA_DIR": str(data)}

    def signpost(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "signpost.platform.cli", *args]
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)

    second = signpost("run")
    assert second.returncode == 1
    assert (
        f"cannot start: another `signpost run` (pid {platform.process.pid}) uses {data.resolve()}"
        in second.stdout
    )
    # The first still answers on its control socket.
    assert "routing is already running" in signpost("service", "start", "routing").stderr
    platform.process.kill()
    platform.process.wait()
    wait_for(lambda: platform.processes() == [], timeout_s=30, what="every child gone")
    with running_platform(tmp_path) as again:  # the same data folder
        assert again.process.poll() is None


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
