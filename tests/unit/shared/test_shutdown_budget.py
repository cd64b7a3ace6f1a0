"""SIGNPOST_SHUTDOWN_GRACE_S and how a service spends it after SIGTERM."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from signpost.shared.settings import Settings


@pytest.mark.parametrize("grace_s", [2, 25, 600])
def test_the_steps_fit_in_the_grace_period_with_a_margin_to_close(grace_s: float) -> None:
    budget = Settings(_env_file=None, shutdown_grace_s=grace_s).shutdown_budget
    steps = [budget.http_s, budget.consumers_s, budget.outbox_s]
    assert all(step > 0 for step in steps)
    assert sum(steps) < grace_s


def test_a_grace_period_too_short_to_finish_anything_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIGNPOST_SHUTDOWN_GRACE_S", "1")
    with pytest.raises(ValidationError, match="shutdown_grace_s"):
        Settings(_env_file=None)
