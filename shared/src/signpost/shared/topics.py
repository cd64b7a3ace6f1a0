"""Every Kafka topic and consumer group, named in one place."""

from __future__ import annotations

from dataclasses import dataclass

from signpost.shared.settings import ServiceName, Settings

DAY_MS = 24 * 3600 * 1000
KEEP_FOREVER = "-1"
# The services whose consumers park an event their handler failed on in a retry topic of their
# own (`kafka.consume_events`); analytics retries a failed batch in place (`projections/consumer.py`).
RETRYING_SERVICES: tuple[ServiceName, ...] = ("intake", "routing")


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    config: dict[str, str]


@dataclass(frozen=True)
class Topics:
    """Topic and consumer group names for one deployment (the prefix keeps test runs apart).

    Topics are the stream's, which the areas of a region may share (so each area's analytics hears
    its neighbours); consumer groups are the area's own (`tenant`), so each area's services read
    every event on the stream rather than splitting them with another area's."""

    prefix: str
    partitions: int
    tenant: str

    @classmethod
    def from_settings(cls, settings: Settings) -> Topics:
        return cls(prefix=settings.topic_prefix, partitions=settings.topic_partitions, tenant=settings.tenant)

    @property
    def referrals(self) -> str:
        """Every lifecycle event of every referral, keyed by referral id so each stays in order."""
        return f"{self.prefix}signpost.referrals"

    @property
    def provisions(self) -> str:
        """The Local Offer catalogue, keyed by provision id and compacted: the latest state of each."""
        return f"{self.prefix}signpost.provisions"

    @property
    def settings_register(self) -> str:
        """The area's register of settings (schools, nurseries, colleges), keyed by setting id and compacted."""
        return f"{self.prefix}signpost.settings-register"

    @property
    def dead_letters(self) -> str:
        """Messages no consumer could read: original bytes and headers plus the error."""
        return f"{self.prefix}signpost.dead-letters"

    def retry(self, service: str) -> str:
        """Events whose handler failed in `service`, waiting for their next attempt.

        One per consuming service: a retry is that service's business alone, and the
        other services have already handled the event from the original topic.
        """
        return f"{self.prefix}signpost.retry.{service}"

    def specs(self) -> list[TopicSpec]:
        """What `ensure_topics` creates, wherever it runs first (a service or `signpost migrate`):
        Tansu cannot add partitions later, so counts are final. Topics without a `retention.ms`
        keep the broker's default (7 days)."""
        return [
            # Kept for good: it is how analytics is rebuilt and a new consumer catches up, and
            # its events carry no identifying details.
            TopicSpec(
                self.referrals, self.partitions, {"cleanup.policy": "delete", "retention.ms": KEEP_FOREVER}
            ),
            TopicSpec(self.provisions, 3, {"cleanup.policy": "compact"}),
            TopicSpec(self.settings_register, 1, {"cleanup.policy": "compact"}),
            # A month: long enough to inspect and replay them.
            TopicSpec(self.dead_letters, 1, {"cleanup.policy": "delete", "retention.ms": str(30 * DAY_MS)}),
            # Keyed like the original, so a referral's parked events keep their order.
            *(
                TopicSpec(self.retry(service), self.partitions, {"cleanup.policy": "delete"})
                for service in RETRYING_SERVICES
            ),
        ]

    def group(self, service: str) -> str:
        """`service`'s group in this area: `{prefix}signpost-{tenant}-{service}`."""
        return f"{self.prefix}signpost-{self.tenant}-{service}"

    def retry_group(self, service: str) -> str:
        """Its own group: a consumer waiting for a retry to fall due must not hold up the main one."""
        return f"{self.group(service)}-retry"

    def former_groups(self, service: str) -> dict[str, str]:
        """`service`'s groups, each with the name it had before groups were named with the tenant
        (`{prefix}signpost-{service}`): what `carry_over_offsets` copies committed offsets from."""
        former = {self.group(service): f"{self.prefix}signpost-{service}"}
        if service in RETRYING_SERVICES:
            former[self.retry_group(service)] = f"{self.prefix}signpost-{service}-retry"
        return former
