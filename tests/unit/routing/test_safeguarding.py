from typing import cast

from signpost.routing.catalogue.snapshot import CatalogueSnapshot
from signpost.routing.decisions.service import route_referral
from signpost.shared.events import Envelope, EventData, new_event
from signpost.shared.service import Runtime

from tests.unit.shared.test_events import submitted


async def test_safeguarding_never_reaches_matching() -> None:
    concern = submitted().model_copy(update={"safeguarding_concern": True})
    event: Envelope[EventData] = new_event(concern, source="/signpost/intake", tenant="t")
    # No runtime at all: the handler must return before reading a catalogue or writing a decision.
    await route_referral(runtime=cast(Runtime, None), envelope=event, catalogue=CatalogueSnapshot())


def test_ehc_assessment_is_recommended_only_for_specialist_need_the_graduated_approach_has_not_met() -> None:
    from signpost.routing.decisions.service import needs_ehc_assessment
    from signpost.shared.vocabulary import LevelOfNeed

    def child(level: LevelOfNeed, cycles: int, worked: bool | None) -> object:
        return submitted().model_copy(
            update={
                "level_of_need": level,
                "graduated_approach_cycles": cycles,
                "graduated_approach_worked": worked,
            }
        )

    assert needs_ehc_assessment(child(LevelOfNeed.SPECIALIST, 2, False), min_cycles=2)  # type: ignore[arg-type]
    assert not needs_ehc_assessment(child(LevelOfNeed.SPECIALIST, 1, False), min_cycles=2)  # type: ignore[arg-type]
    assert not needs_ehc_assessment(child(LevelOfNeed.SPECIALIST, 4, None), min_cycles=2)  # type: ignore[arg-type]
    assert not needs_ehc_assessment(child(LevelOfNeed.TARGETED, 4, False), min_cycles=2)  # type: ignore[arg-type]
