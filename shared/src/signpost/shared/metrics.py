"""Prometheus metrics every service exposes at `/metrics`.

Each service process owns one registry (so several apps in one test process stay
apart). Labels are bounded and never personal: the route is the TEMPLATE
(`/v1/referrals/{referral_id}`), never the raw path, whose ids would leak and
whose variety would explode the series count.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from pymongo import monitoring
from signpost.shared.offsets import PartitionLag
from starlette.types import ASGIApp, Message, Receive, Scope, Send

UNMATCHED_ROUTE = "<unmatched>"  # 404s: their paths are whatever a caller typed
OTHER_AREA = "other_area"  # signpost_events_skipped_total's reason for another area's events
CONTENT_TYPE = CONTENT_TYPE_LATEST

# Requests are mostly a few milliseconds; SecantusDB transactions and pages can take longer.
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
HANDLER_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class ServiceMetrics:
    """The instruments of one service process."""

    def __init__(self, service: str) -> None:
        self.service = service
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        self.http_duration = Histogram(
            "signpost_http_request_duration_seconds",
            "HTTP request latency; _count is the number of requests.",
            ["service", "method", "route", "status"],
            buckets=HTTP_BUCKETS,
            registry=self.registry,
        )
        self.handler_duration = Histogram(
            "signpost_event_handler_duration_seconds",
            "Time one event handler call took, successful or not.",
            ["service", "event_type"],
            buckets=HANDLER_BUCKETS,
            registry=self.registry,
        )
        self.handler_errors = Counter(
            "signpost_event_handler_errors",
            "Event handler calls that raised (the event is retried).",
            ["service", "event_type"],
            registry=self.registry,
        )
        self.events_skipped = Counter(
            "signpost_events_skipped",
            "Events the service passed over on purpose (another area's, on a stream areas share; "
            "routing's acceptances and starts of an offer it never made).",
            ["service", "event_type", "reason"],
            registry=self.registry,
        )
        self.outbox_pending = Gauge(
            "signpost_outbox_pending",
            "Events staged in this service's outbox and not yet published to Kafka.",
            ["service"],
            registry=self.registry,
        )
        self.consumer_lag = Gauge(
            "signpost_consumer_lag",
            "Messages behind: the partition's high watermark minus the group's committed offset.",
            ["group", "topic", "partition"],
            registry=self.registry,
        )
        self.lag_readable = Gauge(
            "signpost_consumer_lag_readable",
            "1 when the last scrape could read consumer lag from Kafka, else 0 (lag series are then absent).",
            ["service"],
            registry=self.registry,
        )

        self.mongodb_commands = Counter(
            "signpost_mongodb_commands",
            "MongoDB commands this process sent (round trips), by command name; commitTransaction counts commits.",
            ["service", "command"],
            registry=self.registry,
        )

    def mongodb_listener(self) -> monitoring.CommandListener:
        """Counts every command the process's MongoDB client sends; pass it to the client."""
        return _CommandCounter(self)

    def observe_handler(self, *, event_type: str, seconds: float, failed: bool) -> None:
        self.handler_duration.labels(self.service, event_type).observe(seconds)
        if failed:
            self.count_handler_error(event_type=event_type)

    def count_handler_error(self, *, event_type: str) -> None:
        self.handler_errors.labels(self.service, event_type).inc()

    def count_skipped(self, *, event_type: str, reason: str) -> None:
        self.events_skipped.labels(self.service, event_type, reason).inc()

    def set_lag(self, rows: Iterable[PartitionLag] | None) -> None:
        """Replace every lag series (a partition no longer reported must not linger); None: unreadable."""
        self.consumer_lag.clear()
        self.lag_readable.labels(self.service).set(0 if rows is None else 1)
        for row in rows or ():
            self.consumer_lag.labels(row.group, row.topic, str(row.partition)).set(row.lag)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _CommandCounter(monitoring.CommandListener):
    def __init__(self, metrics: ServiceMetrics) -> None:
        self._metrics = metrics

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        self._metrics.mongodb_commands.labels(self._metrics.service, event.command_name).inc()

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


class HttpMetricsMiddleware:
    """Times every HTTP request, labelled by method, route template and status."""

    def __init__(self, app: ASGIApp, *, metrics: ServiceMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # if the app raises before answering, the client gets a 500

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            self.metrics.http_duration.labels(
                self.metrics.service, scope["method"], route_template(scope), str(status)
            ).observe(time.perf_counter() - started)


def route_template(scope: Scope) -> str:
    """The matched route's path template; never the raw path."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    if not isinstance(path, str):
        return UNMATCHED_ROUTE
    # A mount (static assets) matches a whole subtree; its template stands for all of it.
    return path if getattr(route, "routes", None) is None else f"{path}/{{path}}"
