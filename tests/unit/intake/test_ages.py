"""A child's age and birthday follow the English calendar: at 00:30 in British Summer Time it is
already the next day, while UTC's date is still the day before."""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo

import pytest
from signpost.intake.referrals import models, service
from signpost.intake.referrals.models import ReferralRequest
from signpost.shared.auth.principal import Principal, Role
from signpost.shared.events import ReferralSubmittedV1
from signpost.shared.settings import Settings
from signpost.shared.timestamps import day_in_england

from tests.factories import referral

# 00:30 on 15 June 2026 in England; 23:30 on the 14th in UTC.
JUST_AFTER_MIDNIGHT_BST = datetime(2026, 6, 14, 23, 30, tzinfo=UTC)


class _Frozen(datetime):
    @classmethod
    def now(cls, tz: tzinfo | None = None) -> _Frozen:
        return cls.fromtimestamp(JUST_AFTER_MIDNIGHT_BST.timestamp(), tz)


@pytest.fixture
def just_after_midnight(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(models, "datetime", _Frozen)
    monkeypatch.setattr(service, "datetime", _Frozen)


def test_the_day_in_england_follows_summer_time() -> None:
    assert str(day_in_england(JUST_AFTER_MIDNIGHT_BST)) == "2026-06-15"
    assert str(day_in_england(datetime(2026, 1, 14, 23, 30, tzinfo=UTC))) == "2026-01-14"


@pytest.mark.usefixtures("just_after_midnight")
def test_a_child_whose_birthday_began_in_england_is_a_year_older_and_a_baby_born_today_is_accepted() -> None:
    fifth_birthday = ReferralRequest.model_validate(
        referral(child={**referral()["child"], "date_of_birth": "2021-06-15"})
    )
    pending = service.prepare_submission(
        settings=Settings(),
        request=fifth_birthday,
        principal=Principal(subject="s", role=Role.PRACTITIONER, organisation="o", tenant="E06000023"),
        correlation_id="c-1",
        idempotency_key=None,
    )
    submitted = pending.events[0].data
    assert isinstance(submitted, ReferralSubmittedV1) and submitted.age_years == 5

    born_today = referral(child={**referral()["child"], "date_of_birth": "2026-06-15"})
    assert ReferralRequest.model_validate(born_today).child.date_of_birth.isoformat() == "2026-06-15"
