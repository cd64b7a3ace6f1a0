"""Structured logging, set up once per process: JSON off a terminal, readable on one.

The correlation id is bound per request (HTTP header) or per event (its envelope),
through structlog's context variables, so every line written while handling it
carries the id. Log fields never hold a child's identifying details.
"""

from __future__ import annotations

import logging
import re
import sys
import uuid
from collections.abc import Callable
from typing import Any

import structlog
from signpost.shared.errors import redacted_traceback
from signpost.shared.settings import Settings
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CORRELATION_HEADER = "x-correlation-id"
_UUID_OR_TRACE_ID = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}|[0-9a-fA-F]{32}"
)

_configured = False


def configure_logging(settings: Settings, *, service: str) -> None:
    global _configured
    if _configured:
        return
    as_json = settings.log_format == "json" or (settings.log_format == "auto" and not sys.stderr.isatty())
    shared_processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _add_service(service),
        # A plain traceback, for our lines and the libraries' alike: without it JSON logs a
        # library's error with no traceback, and the console renders it with rich, which
        # prints every frame's local variables (a request body: a child's details, a token).
        _redacted_exc_info,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if as_json
        else structlog.dev.ConsoleRenderer(
            colors=sys.stderr.isatty(), exception_formatter=structlog.dev.plain_traceback
        )
    )
    structlog.configure(
        processors=[*shared_processors, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[settings.log_level]
        ),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )
    # Library loggers (uvicorn, aiokafka, faststream) go through the same renderer.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared_processors,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level)
    # Drivers log whole documents and messages at DEBUG (pymongo's command log carries
    # a child's details), and HTTP clients every request's URL at INFO (a partner's webhook,
    # the demo's thousands of calls): they never log below WARNING, whatever the service's level.
    for driver in ("aiokafka", "pymongo", "httpx", "httpcore"):
        logging.getLogger(driver).setLevel(max(logging.WARNING, root.level))
    _configured = True


def _redacted_exc_info(_: Any, __: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """structlog's `format_exc_info`, but each exception told without the documents or input it
    carries (`redacted_traceback`): a failed write's error holds the referral it wrote."""
    exc_info = event_dict.pop("exc_info", None)
    if isinstance(exc_info, BaseException):
        exc: BaseException | None = exc_info
    elif isinstance(exc_info, tuple):
        exc = exc_info[1]
    else:
        exc = sys.exception() if exc_info else None
    if exc is not None:
        event_dict["exception"] = redacted_traceback(exc)
    return event_dict


def _add_service(service: str) -> Callable[[Any, str, dict[str, Any]], dict[str, Any]]:
    def add(_: Any, __: str, event_dict: dict[str, Any]) -> dict[str, Any]:
        event_dict.setdefault("service", service)
        return event_dict

    return add


def get_logger(name: str) -> Any:
    return structlog.get_logger(name)


def bind_correlation_id(correlation_id: str) -> None:
    structlog.contextvars.bind_contextvars(correlation_id=correlation_id)


class CorrelationIdMiddleware:
    """Binds the caller's `X-Correlation-Id` (or a new one) and echoes it on the response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        supplied = dict(scope["headers"]).get(CORRELATION_HEADER.encode(), b"").decode("latin-1")
        correlation_id = supplied if is_safe_id(supplied) else str(uuid.uuid4())
        scope.setdefault("state", {})["correlation_id"] = correlation_id
        structlog.contextvars.clear_contextvars()
        bind_correlation_id(correlation_id)

        async def send_with_header(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", []).append(
                    (CORRELATION_HEADER.encode(), correlation_id.encode())
                )
            await send(message)

        await self.app(scope, receive, send_with_header)


def is_safe_id(value: str) -> bool:
    """A UUID or a W3C trace id, by shape: the id travels in events to every partner and stays on
    the log, so a caller's own case reference (which may hold a name or an NHS number) is never
    taken; a new id is minted and echoed instead."""
    return _UUID_OR_TRACE_ID.fullmatch(value) is not None
