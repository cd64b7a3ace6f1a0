"""What the ops view answers: streams and health, never a child's details."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class PartitionLagView(BaseModel):
    group: str = Field(
        description="The consumer group, e.g. `signpost-E06000023-routing` (prefix, `signpost-`, the tenant, the service)."
    )
    topic: str
    partition: int
    high_watermark: int = Field(description="The offset the partition's next record will get.")
    committed: int | None = Field(description="The group's committed offset; null before its first commit.")
    lag: int = Field(description="Records the group has still to process: high watermark minus committed.")


class TopicView(BaseModel):
    topic: str
    partitions: int
    retained: int = Field(description="Records in the log now (high minus low watermarks).")
    events_per_second: float | None = Field(
        description="Records appended per second over the last 30 s of samples; null until two samples exist."
    )
    last_event_at: datetime | None = Field(description="Timestamp of the newest record; null when empty.")


class DeadLetters(BaseModel):
    topic: str
    total: int | None = Field(
        description="Dead letters retained on the topic; null until a sample has succeeded (not known yet)."
    )
    by_service: dict[str, int] = Field(
        description="The dead letters retained on the topic by the service that could not read them: "
        "they add up to `total` once this process has read the topic to its end."
    )


class HistoryPoint(BaseModel):
    at: datetime
    events_per_second: dict[str, float] = Field(description="Per topic, since the previous sample.")
    lag: dict[str, int] = Field(description="Per consumer group, summed over its partitions.")


class ServiceHealth(BaseModel):
    service: str
    url: str
    status: str = Field(description="`ready`, `not ready` or `unreachable`.")
    checks: dict[str, str] = Field(description="The service's own readiness checks (Kafka, MongoDB).")


class StreamsView(BaseModel):
    sampled_at: datetime | None = Field(
        description="When the streams were last sampled; null before the first."
    )
    sample_interval_s: float
    error: str | None = Field(
        description="Why the latest sample failed, if it did (the figures are then older)."
    )
    lag: list[PartitionLagView]
    topics: list[TopicView]
    dead_letters: DeadLetters
    history: list[HistoryPoint] = Field(description="The last 15 minutes of samples, oldest first.")


class OpsView(StreamsView):
    health: list[ServiceHealth]
