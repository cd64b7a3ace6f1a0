"""`signpost service stop|start`: what the supervisor does with each request (pure logic, fake children)."""

from __future__ import annotations

import signal
import socket
import threading
import time
from pathlib import Path

import pytest
from signpost.shared.settings import Settings

from signpost.platform.control import Services, control_socket, request


class FakeChild:
    def __init__(self, name: str) -> None:
        self.name = name
        self.code: int | None = None
        self.signals: list[signal.Signals] = []

    def signal(self, signum: signal.Signals) -> None:
        self.signals.append(signum)
        self.code = -signum

    def wait(self, timeout_s: float) -> None:
        pass

    def exit_code(self) -> int | None:
        return self.code

    def describe_exit(self) -> str:
        return f"exit {self.code}"


def services() -> tuple[Services, list[FakeChild], list[str]]:
    started: list[FakeChild] = []
    said: list[str] = []

    def start(name: str) -> FakeChild:
        started.append(FakeChild(name))
        return started[-1]

    supervised = Services(
        start,  # type: ignore[arg-type]
        lambda name: True,
        stop_timeout_s=1,
        ready_timeout_s=1,
        say=said.append,
    )
    supervised.start_all()
    return supervised, started, said


def test_a_stopped_service_is_not_watched_and_starts_again_from_the_main_thread() -> None:
    supervised, started, said = services()
    routing = started[1]

    assert supervised.handle("stop", "routing") == (True, said[-1])
    assert routing.signals == [signal.SIGTERM]
    assert "routing stopped;" in said[-1]  # drained: no exit detail
    assert [child.name for child in supervised.watched()] == ["intake", "analytics"]
    assert supervised.handle("stop", "routing")[0] is False

    answer: list[tuple[bool, str]] = []
    asking = threading.Thread(target=lambda: answer.append(supervised.handle("start", "routing")))
    asking.start()
    deadline = time.monotonic() + 5
    while len(started) == 3 and time.monotonic() < deadline:  # the request waits for the main loop
        supervised.start_requested()
    asking.join(5)
    assert answer and answer[0][0] is True and "running again" in answer[0][1]
    assert [id(child) for child in supervised.every()] == [id(started[0]), id(started[3]), id(started[2])]


def test_bad_requests_are_refused_with_what_to_use() -> None:
    supervised, _, _ = services()
    assert supervised.handle("pause", "routing") == (False, "unknown action 'pause': use stop or start")
    assert supervised.handle("stop", "kafka")[1] == "unknown service 'kafka': use intake, routing, analytics"
    assert supervised.handle("start", "intake") == (False, "intake is already running")


def test_requests_travel_over_the_data_directorys_socket(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    supervised, started, _ = services()
    assert request(settings, "stop", "intake", timeout_s=5)[0] is False  # nothing listens yet
    with control_socket(settings, supervised) as unavailable:
        assert unavailable is None
        done, message = request(settings, "stop", "intake", timeout_s=5)
    assert done and message.startswith("intake stopped")
    assert started[0].signals == [signal.SIGTERM]
    assert not (tmp_path / "run.sock").exists()


def test_a_second_run_leaves_the_first_runs_socket_to_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = Settings(data_dir=tmp_path)
    first, started, _ = services()
    second, _, _ = services()
    with control_socket(settings, first) as unavailable:
        assert unavailable is None
        with control_socket(settings, second) as unavailable:
            assert unavailable == f"another process listens at {tmp_path.resolve() / 'run.sock'}"
        assert request(settings, "stop", "intake", timeout_s=5)[0]  # still the first run's
    assert started[0].signals == [signal.SIGTERM]
    assert "Traceback" not in capsys.readouterr().err  # the first does not answer the second's look


def test_a_socket_left_by_a_killed_run_is_replaced(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as killed:
        killed.bind(str(tmp_path / "run.sock"))  # bound, then gone without removing its file
    supervised, started, _ = services()
    with control_socket(settings, supervised) as unavailable:
        assert unavailable is None
        assert request(settings, "stop", "intake", timeout_s=5)[0]
    assert started[0].signals == [signal.SIGTERM]


def test_a_control_socket_that_cannot_be_used_says_why_not_that_nothing_listens(tmp_path: Path) -> None:
    a_file = tmp_path / "a-file"
    a_file.touch()
    done, message = request(Settings(data_dir=a_file), "stop", "routing", timeout_s=5)
    assert not done
    assert message == f"cannot use SIGNPOST_DATA_DIR's control socket {a_file / 'run.sock'}: Not a directory"

    too_long = tmp_path / ("x" * 120)
    done, message = request(Settings(data_dir=too_long), "stop", "routing", timeout_s=5)
    assert not done
    assert message.startswith("cannot use SIGNPOST_DATA_DIR's control socket") and "too long" in message


def test_a_run_that_never_answers_is_named_not_a_traceback(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as silent:
        silent.bind(str(tmp_path / "run.sock"))
        silent.listen()  # accepts the connection, never answers
        done, message = request(settings, "stop", "intake", timeout_s=0.2)
    assert not done
    assert message == f"the `signpost run` at {tmp_path / 'run.sock'} did not answer within 0.2 s"
