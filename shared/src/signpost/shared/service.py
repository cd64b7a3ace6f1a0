"""What every Signpost service shares: its runtime, its app and lifespan, health and errors.

FastStream's FastAPI plugin is deprecated, so the plain KafkaBroker is started and
stopped in the FastAPI lifespan.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from faststream.kafka import KafkaBroker
from pydantic import BaseModel, Field
from pymongo import AsyncMongoClient
from signpost.shared.area import DatabaseOfAnotherArea, claim_database
from signpost.shared.auth.ratelimit import TokenBucket
from signpost.shared.auth.tokens import TokenVerifier
from signpost.shared.errors import describe_error
from signpost.shared.events import Envelope, EventData
from signpost.shared.kafka import create_broker, ensure_topics, start_broker, subscribe_events
from signpost.shared.limits import BodySizeLimitMiddleware
from signpost.shared.logging import CorrelationIdMiddleware, configure_logging, get_logger
from signpost.shared.logwatch import LogLossWatch
from signpost.shared.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from signpost.shared.metrics import OTHER_AREA, HttpMetricsMiddleware, ServiceMetrics
from signpost.shared.mongo import Database, Document, IndexPlan, Session, create_client
from signpost.shared.offsets import (
    PartitionLag,
    carry_over_offsets,
    group_has_no_offsets,
    service_lag,
    stream_inspector,
)
from signpost.shared.outbox import (
    OUTBOX_INDEX_PLAN,
    OutboxRelay,
    adopt_legacy_pending,
    pending_count,
    transaction_with_events,
)
from signpost.shared.querystring import refuse_unknown_query
from signpost.shared.responses import document_shared_responses
from signpost.shared.settings import ServiceName, Settings
from signpost.shared.topics import Topics

log = get_logger(__name__)

T = TypeVar("T")

READINESS_TIMEOUT_S = 2.0
CANCEL_AGAIN_S = 1.0  # how long a cancelled background task has to end before it is cancelled again
METRICS_PROBE_TIMEOUT_S = 3.0  # a scrape must answer even while Kafka or MongoDB does not


@dataclass
class Runtime:
    """The connections one service process holds; built without I/O, opened in the lifespan."""

    settings: Settings
    service: ServiceName
    topics: Topics
    broker: KafkaBroker
    client: AsyncMongoClient[Document]
    db: Database
    metrics: ServiceMetrics
    background: list[Callable[[], Coroutine[Any, Any, None]]] = field(default_factory=list)
    outbox: OutboxRelay | None = None
    consumes_events: bool = False
    # Further readiness checks by name: "ok", or why the service cannot answer yet.
    readiness: dict[str, Callable[[], str]] = field(default_factory=dict)

    @classmethod
    def build(cls, settings: Settings, service: ServiceName) -> Runtime:
        metrics = ServiceMetrics(service)
        client = create_client(settings, listeners=[metrics.mongodb_listener()])
        return cls(
            settings=settings,
            service=service,
            topics=Topics.from_settings(settings),
            broker=create_broker(settings, service=service),
            client=client,
            db=client[settings.database_name(service)],
            metrics=metrics,
        )

    def enable_outbox(self) -> None:
        """Relay this service's staged events to Kafka for as long as it runs."""
        self.outbox = OutboxRelay(
            db=self.db, broker=self.broker, poll_interval_s=self.settings.outbox_poll_interval_s
        )
        self.background.append(self.outbox.run)

    def consume_events(
        self,
        handler: Callable[..., Awaitable[None]],
        *,
        topics: Sequence[str] = (),
        batch_handler: Callable[..., Awaitable[None]] | None = None,
    ) -> None:
        """Feed every event on `topics` (default: the referrals topic) to `handler(runtime=, envelope=)`,
        or in batches to `batch_handler(runtime=, envelopes=)` when given (`handler` then takes the
        events of a failed batch one by one, and the retries).

        Call once per service: it also subscribes the service's retry consumer.

        Only this area's events reach the handlers: the areas of a region may share one stream, and
        another area's events (its `tenant`) are its own services' business. They are skipped, not
        dead-lettered, and counted in `signpost_events_skipped_total{reason="other_area"}`, those
        another area parked on the shared retry topic too (before waiting for them to fall due).
        """
        tenant = self.settings.tenant

        def ours(envelope: Envelope[EventData]) -> bool:
            if envelope.tenant == tenant:
                return True
            self.metrics.count_skipped(event_type=envelope.type, reason=OTHER_AREA)
            log.debug("event of another area skipped", event_id=envelope.id, tenant=envelope.tenant)
            return False

        async def handle(envelope: Envelope[EventData]) -> None:
            if not ours(envelope):
                return
            started, failed = time.perf_counter(), True
            try:
                await handler(runtime=self, envelope=envelope)
                failed = False
            finally:
                self.metrics.observe_handler(
                    event_type=envelope.type, seconds=time.perf_counter() - started, failed=failed
                )

        async def handle_batch(batch: Sequence[Envelope[EventData]]) -> None:
            assert batch_handler is not None
            envelopes = [envelope for envelope in batch if ours(envelope)]
            if not envelopes:
                return
            started = time.perf_counter()
            try:
                await batch_handler(runtime=self, envelopes=envelopes)
            except Exception:
                # One call that raised, for each kind of event in it, not one per event: the events
                # are handled again (one by one, or the batch in place) and counted then.
                for event_type in dict.fromkeys(envelope.type for envelope in envelopes):
                    self.metrics.count_handler_error(event_type=event_type)
                raise
            share = (time.perf_counter() - started) / len(envelopes)  # each event an equal share
            for envelope in envelopes:
                self.metrics.observe_handler(event_type=envelope.type, seconds=share, failed=False)

        self.consumes_events = True
        subscribe_events(
            self.broker,
            settings=self.settings,
            service=self.service,
            handler=handle,
            topics=topics,
            batch_handler=None if batch_handler is None else handle_batch,
            on_other_area=lambda event_type: self.metrics.count_skipped(
                event_type=event_type, reason=OTHER_AREA
            ),
        )

    async def transaction(self, work: Callable[[Session], Awaitable[T]]) -> T:
        """Run `work` in one MongoDB transaction; the events it staged go to the relay once committed,
        to be published at once."""
        result, staged = await transaction_with_events(self.client, work)
        if staged.documents or staged.restaged:
            assert self.outbox is not None, "enable_outbox() first"
            self.outbox.committed(staged)
        return result


async def _stop(runtime: Runtime, tasks: list[asyncio.Task[None]]) -> None:
    """Graceful shutdown within `SIGNPOST_SHUTDOWN_GRACE_S` (uvicorn has already drained HTTP requests).

    Stop consuming first, letting handlers in flight finish and commit their offsets;
    then stop background work, publish the events those handlers staged, and close.
    """
    budget = runtime.settings.shutdown_budget
    stopped = (subscriber.stop() for subscriber in runtime.broker.subscribers)
    for outcome in await asyncio.gather(*stopped, return_exceptions=True):
        if isinstance(outcome, Exception):  # still close everything else
            log.warning("a consumer did not stop cleanly", error=describe_error(outcome))
    await cancel_until_done(tasks)
    if runtime.outbox is not None:
        await runtime.outbox.flush(timeout_s=budget.outbox_s)
    await runtime.broker.stop()
    await runtime.client.close()
    log.info("service stopped")


async def cancel_until_done(tasks: Sequence[asyncio.Task[None]]) -> None:
    """Cancel background tasks and wait for them to end. A task that swallowed its cancellation (a
    library catching CancelledError mid-call, seen once as a webhook round that then waited on for
    good) is cancelled again each `CANCEL_AGAIN_S`, so stopping never hangs on it. What a task
    raised instead is logged: the rest of the shutdown (the outbox's flush above all) still runs."""
    pending = {task for task in tasks if not task.done()}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=CANCEL_AGAIN_S)
        if pending:
            log.warning("background work went on after it was cancelled; cancelling it again",
                        tasks=sorted(task.get_name() for task in pending))  # fmt: skip
    for task in tasks:
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.warning(
                "background work failed as it stopped", task=task.get_name(), error=describe_error(exc)
            )


async def get_runtime(request: Request) -> Runtime:
    # async: FastAPI runs a plain `def` dependency in its thread pool, a thread hand-off per request.
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def create_service_app(
    runtime: Runtime,
    *,
    title: str,
    description: str,
    routers: Sequence[APIRouter],
    tolerant_routers: Sequence[APIRouter] = (),
    indexes: IndexPlan,
    on_startup: Callable[[Runtime], Awaitable[None]] | None = None,
    body_limits: Mapping[str, int] | None = None,
    error_handlers: Mapping[type[Exception], Callable[[Request, Exception], Awaitable[JSONResponse]]]
    | None = None,
) -> FastAPI:
    configure_logging(runtime.settings, service=runtime.service)
    if runtime.outbox is not None:
        indexes = indexes.merged(OUTBOX_INDEX_PLAN)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        try:  # first: nothing is written to another area's database
            await claim_database(runtime.db, tenant=runtime.settings.tenant)
        except DatabaseOfAnotherArea as exc:
            log.error("database belongs to another local area", error=str(exc))
            raise
        await indexes.apply(runtime.db)
        if runtime.outbox is not None:
            await adopt_legacy_pending(runtime.db)
        await ensure_topics(runtime.settings)
        if on_startup is not None:
            await on_startup(runtime)
        if runtime.consumes_events:
            # Before anything reads the groups' offsets: a release whose groups were named without
            # the tenant left its position under the old names (`Topics.former_groups`).
            await carry_over_offsets(runtime.settings, runtime.service)
        if runtime.outbox is not None:
            # Before this service's consumer commits anything: offsets gone means the log went too.
            group = runtime.topics.group(runtime.service)
            log_lost = runtime.consumes_events and await group_has_no_offsets(runtime.settings, group=group)
            await runtime.outbox.prepare_replay(log_lost=log_lost)
        await start_broker(runtime.broker, runtime.settings)
        tasks = [asyncio.create_task(job()) for job in runtime.background]
        if runtime.outbox is not None and runtime.consumes_events:
            # A broker that loses its log while this service runs: topics again, and the replay.
            watch = LogLossWatch(
                runtime.settings,
                group=runtime.topics.group(runtime.service),
                on_loss=runtime.outbox.replay_lost_log,
            )
            tasks.append(asyncio.create_task(watch.run()))
        log.info("service started", topics=runtime.topics.referrals)
        try:
            yield
        finally:
            await _stop(runtime, tasks)

    app = FastAPI(title=title, description=description, version="0.1.0", lifespan=lifespan)
    app.state.runtime = runtime
    app.state.indexes = indexes  # `signpost migrate` applies them ahead of a rollout
    app.state.token_verifier = TokenVerifier.from_settings(runtime.settings)
    app.state.write_limiter = TokenBucket(per_minute=runtime.settings.rate_limit_writes_per_minute)
    app.add_middleware(
        BodySizeLimitMiddleware, max_bytes=runtime.settings.max_request_bytes, path_limits=body_limits
    )
    app.add_middleware(CorrelationIdMiddleware)
    app.add_middleware(HttpMetricsMiddleware, metrics=runtime.metrics)  # outermost: times everything
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unexpected_error)
    for error_type, handler in (error_handlers or {}).items():
        app.add_exception_handler(error_type, handler)
    app.include_router(health_router())
    app.include_router(metrics_router())
    for router in routers:
        # A router in `tolerant_routers` ignores query parameters it does not take: pages whose script
        # reads its own URL, a standard's feed whose clients send what the standard allows.
        strict = not any(router is tolerant for tolerant in tolerant_routers)
        app.include_router(router, dependencies=[Depends(refuse_unknown_query)] if strict else None)
    _document_validation_problems(app)
    return app


def health_router() -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get("/healthz", summary="Liveness: the process is up and serving")
    async def healthz() -> dict[str, str]:
        return {"status": "alive"}

    @router.get(
        "/readyz",
        summary="Readiness: MongoDB answers (and anything else the service needs first); Kafka is "
        "reported but not required, since what goes to Kafka waits in the outbox",
        responses={503: {"description": "MongoDB does not answer, or the service is not ready yet"}},
    )
    async def readyz(runtime: RuntimeDep) -> JSONResponse:
        # Together, so a report with both servers away still comes within one timeout: the ops view
        # and `signpost health` give up after 3 s.
        kafka, mongodb = await asyncio.gather(
            _check(runtime.broker.ping(timeout=READINESS_TIMEOUT_S)), _check(_ping_mongo(runtime.client))
        )
        checks = {
            "kafka": kafka,
            "mongodb": mongodb,
            **{name: check() for name, check in runtime.readiness.items()},
        }
        # A 503 for Kafka would take every pod out of the load balancer for as long as the broker
        # is away, while intake is built to go on taking referrals into its outbox meanwhile.
        ready = all(status == "ok" for name, status in checks.items() if name != "kafka")
        return JSONResponse(
            {"status": "ready" if ready else "not ready", "checks": checks},
            status_code=200 if ready else 503,
        )

    return router


def metrics_router() -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get(
        "/metrics",
        summary="Prometheus metrics: request and handler latency, errors, outbox, consumer lag",
        response_class=Response,
        responses={200: {"content": {METRICS_CONTENT_TYPE: {}}, "description": "Prometheus text format"}},
    )
    async def metrics(runtime: RuntimeDep) -> Response:
        await _refresh_gauges(runtime)
        return Response(runtime.metrics.render(), media_type=METRICS_CONTENT_TYPE)

    return router


async def _refresh_gauges(runtime: Runtime) -> None:
    """Read what is measured on demand (outbox backlog, consumer lag) just before a scrape."""
    if runtime.outbox is not None:
        try:
            pending = await asyncio.wait_for(pending_count(runtime.db), timeout=METRICS_PROBE_TIMEOUT_S)
        except Exception as exc:
            log.warning("metrics: outbox backlog unreadable", error=describe_error(exc))
        else:
            runtime.metrics.outbox_pending.labels(runtime.service).set(pending)
    if runtime.consumes_events:
        try:
            rows = await asyncio.wait_for(_own_lag(runtime), timeout=METRICS_PROBE_TIMEOUT_S)
        except Exception as exc:
            log.warning("metrics: consumer lag unreadable", error=describe_error(exc))
            runtime.metrics.set_lag(None)
        else:
            runtime.metrics.set_lag(rows)


async def _own_lag(runtime: Runtime) -> list[PartitionLag]:
    async with stream_inspector(runtime.settings) as inspector:
        return await service_lag(inspector, runtime.service)


async def _ping_mongo(client: AsyncMongoClient[Document]) -> bool:
    await client.admin.command("ping")
    return True


async def _check(probe: Awaitable[Any]) -> str:
    try:
        ok = await asyncio.wait_for(probe, timeout=READINESS_TIMEOUT_S)
    except Exception as exc:
        return f"unreachable: {type(exc).__name__}"
    return "ok" if ok else "unreachable"


class Problem(BaseModel):
    field: str = Field(description="Where the problem is, e.g. `body.child.date_of_birth`.")
    message: str = Field(description="What is wrong, in plain words.")


class ValidationProblems(BaseModel):
    """What every 422 answer looks like."""

    detail: list[Problem]


def refused(message: str, *fields: str) -> HTTPException:
    """A handler's own 422, shaped as every validation answer: `message` for each of `fields`."""
    problems = ValidationProblems(detail=[Problem(field=field, message=message) for field in fields])
    return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, problems.model_dump()["detail"])


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    """422 with a field path and a plain message per problem; the input is not echoed back. A body
    that is not JSON at all is 400, as every OpenAPI document says (FastAPI reports it as a problem)."""
    assert isinstance(exc, RequestValidationError)
    if unreadable := _body_not_json(exc):
        return JSONResponse({"detail": unreadable}, status_code=400)
    problems = [
        Problem(field=".".join(str(part) for part in error["loc"]), message=_plain_message(error))
        for error in exc.errors()
    ]
    return JSONResponse(ValidationProblems(detail=problems).model_dump(), status_code=422)


def _plain_message(error: Any) -> str:
    """pydantic's message, in words about text where the value is text: a length checked after a
    text type's own validator reads 'Value should have at most 100 items after validation'."""
    if error["type"] in ("too_long", "too_short") and isinstance(error.get("input"), str):
        context = error["ctx"]
        if error["type"] == "too_short" and context["min_length"] == 1:
            return "must not be empty"
        bound = "at most" if error["type"] == "too_long" else "at least"
        limit = context["max_length" if error["type"] == "too_long" else "min_length"]
        return f"should have {bound} {limit} characters, not {context['actual_length']}"
    return str(error["msg"]).removeprefix("Value error, ")


def _body_not_json(exc: RequestValidationError) -> str | None:
    """Why the body could not be read as JSON at all, or None when it was JSON."""
    for error in exc.errors():
        if error["type"] == "json_invalid":  # its location is the body and the character where it broke
            return f"the body is not valid JSON: {error['ctx']['error']} at character {error['loc'][-1]}"
        if error["loc"] == ("body",) and isinstance(error.get("input"), bytes):  # another content type
            return "the body must be JSON, sent with Content-Type: application/json"
    return None


def _document_validation_problems(app: FastAPI) -> None:
    """Make the OpenAPI document describe the 422 body `_validation_error` really sends, and the
    answers authentication and the limits give before any handler runs."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = generate()
            schemas = document.get("components", {}).get("schemas", {})
            if "HTTPValidationError" in schemas:
                schemas["HTTPValidationError"] = ValidationProblems.model_json_schema(
                    ref_template="#/components/schemas/{model}"
                )
                schemas["HTTPValidationError"].pop("$defs", None)
                schemas["Problem"] = Problem.model_json_schema()
            document_shared_responses(document, app.routes)
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error", path=request.url.path, exc_info=exc)
    return JSONResponse(
        {"detail": "internal error; it has been logged, quote the correlation id"},
        status_code=500,
    )
