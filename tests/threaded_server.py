"""A real HTTP server for an ASGI app, on a free loopback port, in a background thread."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from starlette.types import ASGIApp

from signpost.platform.processes import free_port


@contextmanager
def serve_in_thread(app: ASGIApp, *, lifespan: bool = False, start_timeout_s: float = 60.0) -> Iterator[str]:
    """Yields the server's base URL; stops it (and its lifespan) on exit."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="warning", lifespan="on" if lifespan else "off"
        )
    )
    thread = threading.Thread(target=server.run, name=f"http-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + start_timeout_s
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the test server on port {port} did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
