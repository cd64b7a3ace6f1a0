"""Per-caller rate limits on write endpoints: a token bucket per subject, in process.

Each replica limits on its own, so the effective limit scales with replicas; that is
enough to stop one runaway client without shared infrastructure.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from fastapi import HTTPException, Request, status
from signpost.shared.auth.dependencies import PrincipalDep
from signpost.shared.auth.principal import Principal

MAX_TRACKED_CALLERS = 10_000

# A caller: its organisation and subject, kept apart (joined with a colon, organisation "a" with
# subject "b:c" shared a bucket with organisation "a:b" and subject "c").
Caller = tuple[str, str]


@dataclass
class TokenBucket:
    per_minute: int
    clock: Callable[[], float] = time.monotonic
    _buckets: dict[Caller, tuple[float, float]] = field(default_factory=dict)

    def take(self, caller: Caller) -> float:
        """Spend one token; returns 0 when allowed, else the seconds until one is free."""
        now = self.clock()
        rate = self.per_minute / 60.0
        tokens, last = self._buckets.get(caller, (float(self.per_minute), now))
        tokens = min(float(self.per_minute), tokens + (now - last) * rate)
        if tokens < 1.0:
            self._buckets[caller] = (tokens, now)
            return (1.0 - tokens) / rate
        if len(self._buckets) >= MAX_TRACKED_CALLERS and caller not in self._buckets:
            self._buckets.clear()  # a full bucket is the default: forgetting callers only forgives them
        self._buckets[caller] = (tokens - 1.0, now)
        return 0.0


async def rate_limited_write(request: Request, principal: PrincipalDep) -> Principal:
    """429 with Retry-After once a caller exceeds the service's write rate."""
    bucket: TokenBucket = request.app.state.write_limiter
    wait = bucket.take((principal.organisation, principal.subject))
    if wait > 0:
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            detail=f"too many writes; try again in {math.ceil(wait)} s",
            headers={"Retry-After": str(math.ceil(wait))},
        )
    return principal
