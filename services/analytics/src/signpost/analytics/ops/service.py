"""Assembling the ops view from the sampler's state and the services' readiness."""

from __future__ import annotations

import asyncio
from itertools import pairwise

import httpx
from signpost.analytics.ops.models import (
    DeadLetters,
    HistoryPoint,
    PartitionLagView,
    ServiceHealth,
    StreamsView,
    TopicView,
)
from signpost.analytics.ops.sampler import OpsSampler, StreamState
from signpost.shared.settings import SERVICE_NAMES, ServiceName, Settings

HEALTH_TIMEOUT_S = 3.0


def streams_view(sampler: OpsSampler) -> StreamsView:
    state = sampler.state
    topics = sampler.topics
    names = sorted({tp.topic for tp in state.watermarks})
    return StreamsView(
        sampled_at=state.sampled_at,
        sample_interval_s=sampler.settings.ops_sample_interval_s,
        error=state.error,
        lag=[
            PartitionLagView(
                group=row.group,
                topic=row.topic,
                partition=row.partition,
                high_watermark=row.high_watermark,
                committed=row.committed,
                lag=row.lag,
            )
            for row in sorted(state.lag, key=lambda r: (r.group, r.topic, r.partition))
        ],
        topics=[_topic_view(state, name) for name in names],
        dead_letters=DeadLetters(
            topic=topics.dead_letters,
            total=None
            if state.sampled_at is None
            else sum(m.retained for tp, m in state.watermarks.items() if tp.topic == topics.dead_letters),
            by_service=dict(sorted(state.dead_letters_by_service.items())),
        ),
        history=_history(state),
    )


def _topic_view(state: StreamState, topic: str) -> TopicView:
    partitions = {tp: marks for tp, marks in state.watermarks.items() if tp.topic == topic}
    times = [marks.last_event_at for marks in partitions.values() if marks.last_event_at is not None]
    return TopicView(
        topic=topic,
        partitions=len(partitions),
        retained=sum(marks.retained for marks in partitions.values()),
        events_per_second=state.events_per_second(topic),
        last_event_at=max(times, default=None),
    )


def _history(state: StreamState) -> list[HistoryPoint]:
    return [
        HistoryPoint(
            at=current.at,
            events_per_second={
                topic: round(max(0, high - previous.high.get(topic, 0)) / elapsed, 3)
                for topic, high in current.high.items()
            },
            lag=current.lag,
        )
        for previous, current in pairwise(state.history)
        if (elapsed := current.monotonic - previous.monotonic) > 0
    ]


async def services_health(settings: Settings) -> list[ServiceHealth]:
    async with httpx.AsyncClient(timeout=HEALTH_TIMEOUT_S) as client:
        return list(await asyncio.gather(*(_readiness(client, settings, name) for name in SERVICE_NAMES)))


async def _readiness(client: httpx.AsyncClient, settings: Settings, service: ServiceName) -> ServiceHealth:
    url = settings.service_url(service)
    try:
        response = await client.get(f"{url}/readyz")
        body = response.json()
        checks = {str(k): str(v) for k, v in body.get("checks", {}).items()}
    except (httpx.HTTPError, ValueError, AttributeError) as exc:
        return ServiceHealth(
            service=service, url=url, status="unreachable", checks={"http": unreachable(exc)}
        )
    return ServiceHealth(
        service=service,
        url=url,
        status="ready" if response.status_code == 200 else "not ready",
        checks=checks,
    )


def unreachable(exc: Exception) -> str:
    """Why a service's readiness could not be read, in words an operator acts on (not an exception name)."""
    if isinstance(exc, httpx.ConnectError):
        return "not answering (nothing accepts connections at its address: stopped, or still starting)"
    if isinstance(exc, httpx.TimeoutException):
        return f"no answer within {HEALTH_TIMEOUT_S:g} s (overloaded or stuck)"
    if isinstance(exc, httpx.HTTPError):
        return "the connection failed part-way (restarting?)"
    return "answered, but not with a readiness report (is something else on its port?)"
