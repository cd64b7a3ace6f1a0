"""Child processes that cannot outlive their parent and whose output is labelled."""

from __future__ import annotations

import contextlib
import ctypes
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TextIO

_PR_SET_PDEATHSIG = 1


_handed_out: set[int] = set()
_handing_out = threading.Lock()


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now, and not handed out before by this process.

    Chosen at random below the OS's ephemeral range where it has one (Linux): a port from that
    range, free when probed, can be taken as the source port of any outgoing connection before the
    server binds it, which busy test runs with hundreds of client connections saw happen (a
    service answering on another's port). Elsewhere the OS picks; either way, a port once probed
    may be handed out again, so this process never hands out one twice."""
    with _handing_out:
        while True:
            port = _probe(host, _random_port_below_ephemeral())
            if port is not None and port not in _handed_out:
                _handed_out.add(port)
                return port


_EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_BELOW_EPHEMERAL = 12_000  # how many ports below the ephemeral range to choose among


def _random_port_below_ephemeral() -> int:
    """A random port below the ephemeral range, or 0 (the OS picks) where it cannot be read."""
    try:
        low = int(_EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0
    if low - _BELOW_EPHEMERAL < 1024:
        return 0
    return random.randrange(low - _BELOW_EPHEMERAL, low)


def _probe(host: str, port: int) -> int | None:
    """`port` if it can be bound on `host` now (the one the OS picks when `port` is 0), else None."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return None
        return int(sock.getsockname()[1])


# A server bound to a wildcard address is reached on loopback; one bound to '::' takes
# IPv4 too (dual stack), so a port held on either loopback keeps it from binding.
_WILDCARD_LOOPBACKS = {"": ("127.0.0.1",), "0.0.0.0": ("127.0.0.1",), "::": ("::1", "127.0.0.1")}


def port_is_open(host: str, port: int) -> bool:
    """Whether something accepts connections at host:port, IPv4 or IPv6 (a wildcard host: on loopback).

    Raises socket.gaierror for a name that does not resolve."""
    return any(_accepts(address, port) for address in _WILDCARD_LOOPBACKS.get(host, (host,)))


def _accepts(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=0.2).close()
    except socket.gaierror:
        raise
    except OSError:  # refused, timed out, or no IPv6 on this machine
        return False
    return True


def _detach_and_die_with_parent() -> None:
    # Own process group, so a terminal's Ctrl-C reaches only the supervisor, which
    # then stops children in order; and on Linux the kernel kills the child if the
    # parent dies without cleaning up (kill -9), so nothing is orphaned. SIGKILL, not
    # SIGTERM: SecantusDB's SIGTERM handler was seen deadlocked on its own lock, and a
    # service stopping gracefully waited on servers dying with it (10-20 s, once for
    # good). Nothing needs the graceful path: outboxes and idempotent consumers make a
    # kill safe, and SecantusDB syncs on commit.
    os.setsid()
    if sys.platform == "linux":
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


class ManagedProcess:
    """One labelled child: every output line goes to `sink` (prefixed) or to a log file."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        sink: TextIO | None = None,
        log_file: Path | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self._argv = list(argv)
        self._env = dict(env) if env is not None else None
        self._sink = sink
        self._log_file = log_file
        self._cwd = cwd
        self._process: subprocess.Popen[bytes] | None = None
        self._pump: threading.Thread | None = None
        self.last_lines: deque[str] = deque(maxlen=20)

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    def start(self) -> ManagedProcess:
        output = open(self._log_file, "ab") if self._log_file else subprocess.PIPE  # noqa: SIM115
        self._process = subprocess.Popen(
            self._argv,
            env=self._env,
            cwd=self._cwd,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            preexec_fn=_detach_and_die_with_parent,
        )
        if self._log_file is None:
            self._pump = threading.Thread(target=self._copy_output, name=f"{self.name}-output", daemon=True)
            self._pump.start()
        else:
            output.close()  # type: ignore[union-attr]
        return self

    def _copy_output(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        sink = self._sink or sys.stdout
        for raw in self._process.stdout:
            line = raw.decode("utf-8", "replace").rstrip()
            self.last_lines.append(line)
            sink.write(f"{self.name:<9} | {line}\n")
            sink.flush()

    def exit_code(self) -> int | None:
        assert self._process is not None
        return self._process.poll()

    def describe_exit(self) -> str:
        code = self.exit_code()
        if code is None:
            return "still running"
        if code < 0:
            return f"killed by {signal.Signals(-code).name}"
        return f"exited with code {code}"

    def signal(self, signum: signal.Signals) -> None:
        if self._process is None or self._process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._process.pid, signum)

    def wait(self, timeout_s: float) -> None:
        """Wait for the child to end; SIGKILL its process group if it outstays `timeout_s`."""
        if self._process is None:
            return
        try:
            self._process.wait(timeout=max(timeout_s, 0.01))
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)
            self._process.wait()
        if self._pump is not None:
            self._pump.join(timeout=1)


def stop_all(processes: Sequence[ManagedProcess], *, timeout_s: float) -> None:
    """SIGTERM several children's process groups at once; SIGKILL what outstays the shared budget."""
    for process in processes:
        process.signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    for process in processes:
        process.wait(deadline - time.monotonic())
