"""How long a webhook delivery is retried before it is given up."""

from __future__ import annotations

from signpost.intake.subscriptions.dispatcher import MAX_RETRY_DELAY_S, retry_delay_s
from signpost.shared.settings import Settings

DAY_S = 24 * 3600


def test_default_retries_outlast_a_days_outage() -> None:
    base = Settings.model_fields["webhook_retry_base_s"].default
    attempts = Settings.model_fields["webhook_max_attempts"].default
    waits = [retry_delay_s(attempt, base) for attempt in range(1, attempts)]  # between attempts

    assert sum(waits) >= DAY_S
    assert waits[0] == base and max(waits) == MAX_RETRY_DELAY_S
    assert sum(waits[:-1]) < DAY_S  # no more attempts than a day needs
