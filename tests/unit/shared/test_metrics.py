"""Metric labels and lag arithmetic, without servers."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families
from signpost.shared import service
from signpost.shared.metrics import HttpMetricsMiddleware, ServiceMetrics
from signpost.shared.offsets import PartitionLag
from signpost.shared.settings import Settings

from tests.integration.test_consumer_failures import event_for, provision_event


def values(metrics: ServiceMetrics, name: str, *labels: str) -> dict[tuple[str, ...], float]:
    return {
        tuple(sample.labels[label] for label in labels): sample.value
        for family in text_string_to_metric_families(metrics.render().decode())
        for sample in family.samples
        if sample.name == name
    }


async def test_requests_are_labelled_by_route_template_never_raw_path() -> None:
    metrics = ServiceMetrics("intake")
    app = FastAPI()
    app.add_middleware(HttpMetricsMiddleware, metrics=metrics)

    @app.get("/v1/referrals/{referral_id}")
    async def read(referral_id: str) -> dict[str, str]:
        return {"id": referral_id}

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("unexpected")

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        for path in (
            "/v1/referrals/0193-secret-id",
            "/v1/referrals/another-id",
            "/nothing/Zephyrine",
            "/boom",
        ):
            await client.get(path)
    counts = values(
        metrics, "signpost_http_request_duration_seconds_count", "service", "method", "route", "status"
    )
    assert counts == {
        ("intake", "GET", "/v1/referrals/{referral_id}", "200"): 2,
        ("intake", "GET", "<unmatched>", "404"): 1,
        ("intake", "GET", "/boom", "500"): 1,
    }


def test_handler_failures_are_counted_by_event_type() -> None:
    metrics = ServiceMetrics("routing")
    metrics.observe_handler(event_type="uk.signpost.referral.submitted.v1", seconds=0.01, failed=False)
    metrics.observe_handler(event_type="uk.signpost.referral.submitted.v1", seconds=0.02, failed=True)
    assert values(metrics, "signpost_event_handler_duration_seconds_count", "service", "event_type") == {
        ("routing", "uk.signpost.referral.submitted.v1"): 2
    }
    assert values(metrics, "signpost_event_handler_errors_total", "service", "event_type") == {
        ("routing", "uk.signpost.referral.submitted.v1"): 1
    }


def test_lag_series_are_replaced_on_each_reading() -> None:
    metrics = ServiceMetrics("analytics")
    row = PartitionLag("g", "t", 0, low_watermark=0, high_watermark=10, committed=4)
    metrics.set_lag([row, PartitionLag("g", "t", 1, low_watermark=0, high_watermark=3, committed=3)])
    assert values(metrics, "signpost_consumer_lag", "group", "topic", "partition") == {
        ("g", "t", "0"): 6,
        ("g", "t", "1"): 0,
    }
    metrics.set_lag(None)
    assert values(metrics, "signpost_consumer_lag", "group", "topic", "partition") == {}
    assert values(metrics, "signpost_consumer_lag_readable", "service") == {("analytics",): 0}


def test_lag_of_a_partition_never_committed_counts_from_the_log_start() -> None:
    assert PartitionLag("g", "t", 0, low_watermark=5, high_watermark=12, committed=None).lag == 7
    # A commit older than the retained log cannot be read from: only what is retained is behind.
    assert PartitionLag("g", "t", 0, low_watermark=5, high_watermark=12, committed=2).lag == 7
    assert PartitionLag("g", "t", 0, low_watermark=0, high_watermark=12, committed=12).lag == 0


async def test_a_failed_batch_counts_one_error_per_kind_of_event_not_one_per_event(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Its events are handled again one by one, and counted then: one bad event among many is
    not hundreds of errors."""
    subscribed: dict[str, Any] = {}
    monkeypatch.setattr(service, "subscribe_events", lambda *_, **options: subscribed.update(options))
    never_contacted = Settings(
        _env_file=None, kafka_bootstrap="127.0.0.1:9", mongodb_url="mongodb://127.0.0.1:9"
    )
    runtime = service.Runtime.build(never_contacted, "intake")

    async def fails(**_: object) -> None:
        raise RuntimeError("one bad event")

    async def handles(**_: object) -> None:
        return None

    runtime.consume_events(handles, batch_handler=fails)
    batch = [event_for(f"r-{n}") for n in range(199)] + [provision_event("p-1")]
    with pytest.raises(RuntimeError):
        await subscribed["batch_handler"](batch)

    errors = values(runtime.metrics, "signpost_event_handler_errors_total", "event_type")
    assert errors == {(batch[0].type,): 1.0, (batch[-1].type,): 1.0}
