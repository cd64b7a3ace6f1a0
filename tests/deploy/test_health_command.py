"""`signpost health`, the image's HEALTHCHECK, against a real HTTP server on a free port."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from signpost.platform.cli import main
from signpost.platform.processes import free_port


class _Answers(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        status = {"/healthz": 200, "/readyz": 503}.get(self.path, 404)
        self.send_response(status)
        self.end_headers()
        self.wfile.write(
            b'{"status": "not ready", "checks": {"kafka": "unreachable"}}' if status == 503 else b"{}"
        )

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def routing_port(monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Answers)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    monkeypatch.setenv("SIGNPOST_ROUTING_PORT", str(port))
    for other in ("INTAKE", "ANALYTICS"):
        monkeypatch.setenv(f"SIGNPOST_{other}_PORT", str(free_port()))
    yield port
    server.shutdown()
    server.server_close()


def test_alive_when_the_service_on_this_host_answers(
    routing_port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["health"]) == 0
    assert "routing /healthz: 200" in capsys.readouterr().out


def test_not_ready_says_which_dependency(routing_port: int, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["health", "--service", "routing", "--ready"]) == 1
    assert "routing /readyz: 503" in capsys.readouterr().err


def test_nothing_listening_is_unhealthy(routing_port: int, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["health", "--service", "intake"]) == 1
    assert "no Signpost service answers /healthz" in capsys.readouterr().err
