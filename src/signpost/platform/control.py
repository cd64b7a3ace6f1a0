"""Stop and start one service of a running `signpost run` from another terminal.

`signpost run` listens on a Unix socket in its data directory; `signpost service stop
routing` asks it to stop routing (SIGTERM: it drains, commits and leaves its consumer
group) and `signpost service start routing` to start it again, so a person can watch a
consumer group's lag rise and fall in the ops view. A service stopped this way is not a
crash: the platform keeps running without it. Only the supervisor signals its children.
"""

from __future__ import annotations

import contextlib
import queue
import signal
import socket
import socketserver
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from pathlib import Path

from signpost.shared.settings import SERVICE_NAMES, ServiceName, Settings

from signpost.platform.processes import ManagedProcess

ACTIONS = ("stop", "start")
# AF_UNIX paths are limited to 108 bytes on Linux, the terminating NUL included.
_MAX_SOCKET_PATH = 107
_SPAWN_TIMEOUT_S = 30.0  # the supervisor's loop picks a start request up within 0.2 s
_PROBE_TIMEOUT_S = 2.0


def socket_path(settings: Settings) -> Path:
    return settings.data_dir.resolve() / "run.sock"


class Services:
    """The supervisor's service processes, and which of them a person stopped on purpose."""

    def __init__(
        self,
        start: Callable[[ServiceName], ManagedProcess],
        is_ready: Callable[[ServiceName], bool],
        *,
        stop_timeout_s: float,
        ready_timeout_s: float,
        say: Callable[[str], None],
    ) -> None:
        self._start = start
        self._is_ready = is_ready
        self._stop_timeout_s = stop_timeout_s
        self._ready_timeout_s = ready_timeout_s
        self._say = say
        self._lock = threading.Lock()
        self._running: dict[ServiceName, ManagedProcess] = {}
        self._stopped: set[ServiceName] = set()
        self._busy = threading.Lock()  # one stop or start at a time
        self._to_start: queue.Queue[tuple[ServiceName, Future[ManagedProcess]]] = queue.Queue()

    def start_all(self) -> list[ManagedProcess]:
        with self._lock:
            self._running = {name: self._start(name) for name in SERVICE_NAMES}
            return list(self._running.values())

    def watched(self) -> list[ManagedProcess]:
        """Every service expected to be running: one of these ending is a failure."""
        with self._lock:
            return [process for name, process in self._running.items() if name not in self._stopped]

    def every(self) -> list[ManagedProcess]:
        with self._lock:
            return list(self._running.values())

    def handle(self, action: str, name: str) -> tuple[bool, str]:
        """Carry out one request; (done, what to tell the person)."""
        if action not in ACTIONS:
            return False, f"unknown action {action!r}: use {' or '.join(ACTIONS)}"
        if name not in SERVICE_NAMES:
            return False, f"unknown service {name!r}: use {', '.join(SERVICE_NAMES)}"
        service: ServiceName = name
        with self._busy:
            self._say(f"{action} {service}: requested by `signpost service`")
            done, message = self._stop(service) if action == "stop" else self._start_again(service)
        self._say(message)
        return done, message

    def _stop(self, name: ServiceName) -> tuple[bool, str]:
        with self._lock:
            if name in self._stopped:
                return False, f"{name} is already stopped (`signpost service start {name}` starts it)"
            self._stopped.add(name)
            process = self._running[name]
        process.signal(signal.SIGTERM)
        process.wait(self._stop_timeout_s)
        drained = process.exit_code() in (0, -signal.SIGTERM)
        return True, (
            f"{name} stopped{'' if drained else f' ({process.describe_exit()})'}; the rest of the platform keeps running, and its "
            f"consumer group's lag grows as events arrive until `signpost service start {name}`"
        )

    def start_requested(self) -> None:
        """Start what a person asked for; called by the supervisor's main thread, because on Linux a child
        dies with the thread that started it (PR_SET_PDEATHSIG), and a request's thread ends with it."""
        while True:
            try:
                name, started = self._to_start.get_nowait()
            except queue.Empty:
                return
            with self._lock:
                process = self._running[name] = self._start(name)
                self._stopped.discard(name)
            started.set_result(process)

    def _start_again(self, name: ServiceName) -> tuple[bool, str]:
        with self._lock:
            if name not in self._stopped:
                return False, f"{name} is already running"
        started: Future[ManagedProcess] = Future()
        self._to_start.put((name, started))
        try:
            process = started.result(timeout=_SPAWN_TIMEOUT_S)
        except TimeoutError:
            return False, f"the platform did not start {name} (is it stopping?)"
        deadline = time.monotonic() + self._ready_timeout_s
        while not self._is_ready(name):
            if process.exit_code() is not None:
                return False, f"{name} {process.describe_exit()} while starting"
            if time.monotonic() > deadline:
                return False, f"{name} started but was not ready within {self._ready_timeout_s:.0f} s"
            time.sleep(0.2)
        return True, f"{name} is running again and ready; it catches up from its group's committed offsets"


class _Handler(socketserver.StreamRequestHandler):
    server: _ControlServer

    def handle(self) -> None:
        words = self.rfile.readline(200).decode("utf-8", "replace").split()
        if not words:  # a connection that asks nothing: another run checking whether this one listens
            return
        done, message = (
            self.server.services.handle(words[0], words[1])
            if len(words) == 2
            else (False, "expected: ACTION SERVICE")
        )
        self.wfile.write(f"{'ok' if done else 'refused'} {message}\n".encode())


class _ControlServer(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True

    def __init__(self, path: Path, services: Services) -> None:
        self.services = services
        super().__init__(str(path), _Handler)


@contextlib.contextmanager
def control_socket(settings: Settings, services: Services) -> Iterator[str | None]:
    """Serve stop/start requests while the platform runs; yields why not, if it cannot."""
    path = socket_path(settings)
    if len(str(path).encode()) > _MAX_SOCKET_PATH:
        yield f"the data directory's path is too long for a control socket ({path})"
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    unavailable = _unavailable(path)
    if unavailable:
        yield unavailable
        return
    server = _ControlServer(path, services)
    thread = threading.Thread(target=server.serve_forever, name="control", daemon=True)
    thread.start()
    try:
        yield None
    finally:
        server.shutdown()
        server.server_close()
        path.unlink(missing_ok=True)


def _unavailable(path: Path) -> str | None:
    """Why the control socket cannot be served at `path`, if it cannot. A socket nobody listens on (left by
    a run that was killed) is removed; one that answers belongs to a live process and is left to it."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(_PROBE_TIMEOUT_S)
        try:
            probe.connect(str(path))
        except FileNotFoundError:
            return None
        except ConnectionRefusedError:
            path.unlink(missing_ok=True)
            return None
        except OSError as exc:
            return f"cannot use {path}: {exc.strerror or exc}"
    return f"another process listens at {path}"


def request(settings: Settings, action: str, service: str, *, timeout_s: float) -> tuple[bool, str]:
    """Ask the `signpost run` using this data directory to stop or start a service."""
    path = socket_path(settings)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout_s)
        try:
            sock.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError):
            return False, (
                f"no `signpost run` is listening at {path}: start the platform with `signpost run` "
                "(from the same directory, or with the same SIGNPOST_DATA_DIR)"
            )
        except OSError as exc:  # e.g. the data directory is a file, or its path is too long for a socket
            return False, f"cannot use SIGNPOST_DATA_DIR's control socket {path}: {exc.strerror or exc}"
        try:
            sock.sendall(f"{action} {service}\n".encode())
            answer = sock.makefile("rb").readline().decode("utf-8", "replace").strip()
        except TimeoutError:
            return False, f"the `signpost run` at {path} did not answer within {timeout_s:g} s"
        except OSError as exc:  # it went away mid-request
            return False, f"lost the `signpost run` at {path}: {exc.strerror or exc}"
    verdict, _, message = answer.partition(" ")
    return verdict == "ok", message or "the platform closed the connection without answering"
