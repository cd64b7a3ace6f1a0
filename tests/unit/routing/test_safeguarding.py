from typing import cast

from signpost.routing.decisions.service import route_referral
from signpost.shared.events import new_event
from signpost.shared.service import Runtime

from tests.unit.shared.test_events import submitted


async def test_safeguarding_never_reaches_matching() -> None:
    concern = submitted().model_copy(update={"safeguarding_concern": True})
    event = new_event(concern, source="/signpost/intake", tenant="t", subject="r-1")
    # No runtime at all: the handler must return before reading a catalogue or writing a decision.
    await route_referral(runtime=cast(Runtime, None), envelope=event)
