"""The demo acts only on what it made: someone else's referral is theirs to decide, and to count."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from signpost.shared.settings import Settings

from signpost.platform.demo.area import LocalArea
from signpost.platform.demo.calibration import Calibration
from signpost.platform.demo.referrals import GeneratedReferral
from signpost.platform.demo.runner import Demo, DemoOptions, Endpoints, _Clock
from signpost.platform.demo.summary import read_platform_counts

AGENCY = "la-inclusion-service"
NO_COUNTS: dict[str, Any] = {"submitted": 0, "by_need_code": {}, "by_outcome": {}}


def offer(referral_id: str) -> dict[str, Any]:
    """An offer as `GET /v1/offers` lists it (the fields the demo's agencies read)."""
    return {
        "referral_id": referral_id,
        "provision_id": "autism-outreach",
        "organisation_id": AGENCY,
        "provision_name": "Autism outreach",
    }


def referral_view(referral_id: str, need_codes: list[str], submitted_at: datetime) -> dict[str, Any]:
    """A referral as an admin sees it in `GET /v1/referrals` (the fields the demo reads)."""
    return {
        "id": referral_id,
        "status": "routed",
        "escalation_reason": None,
        "need_codes": need_codes,
        "submitted_at": submitted_at.isoformat(),
    }


async def test_the_demo_leaves_a_referral_it_did_not_send_to_its_sender(
    tmp_path: Path, area: LocalArea, calibration: Calibration, referrals: list[GeneratedReferral]
) -> None:
    mine = next(r for r in referrals if not r.safeguarding and not r.re_referral)
    started = datetime.now(UTC)
    yours = referral_view("yours", ["ASD", "SLCN"], started + timedelta(seconds=1))
    sent = Counter(code.value for code in mine.need_codes) + Counter(yours["need_codes"])
    moves: list[str] = []

    def platform(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if request.method == "POST" and path == "/v1/referrals":
            return httpx.Response(201, json={"id": "mine", "status": "submitted"})
        if path == "/v1/offers":
            return httpx.Response(200, json={"items": [offer("yours"), offer("mine")], "next_cursor": None})
        if request.method == "POST":
            moves.append(path)
            return httpx.Response(200, json={})
        if path == "/v1/referrals":  # newest first, back to one from before the demo began
            before = referral_view("earlier", ["MLD"], started - timedelta(minutes=1))
            mine_view = referral_view("mine", [c.value for c in mine.need_codes], started)
            return httpx.Response(200, json={"items": [yours, mine_view, before], "next_cursor": None})
        assert path == "/v1/pulse", path
        pulse = {"submitted": 2, "by_need_code": dict(sent), "by_outcome": {"routed": 2}}
        return httpx.Response(200, json=pulse)

    endpoints = Endpoints(intake="http://intake", routing="http://routing", analytics="http://analytics")
    demo = Demo(
        Settings(data_dir=tmp_path),
        endpoints,
        DemoOptions(poll_interval_s=0.01),
        progress=lambda *_: None,
        area=area,
        calibration=calibration,
    )
    demo.clock = _Clock(mine.at, 1.0)
    demo.period_end = mine.at
    demo._baseline = read_platform_counts(NO_COUNTS)
    demo._started_at = started
    async with httpx.AsyncClient(transport=httpx.MockTransport(platform)) as demo.http:
        await demo._stream([mine])
        await demo._drain([AGENCY])
        await demo._wait_for_counts()

    assert demo.summary.offers_seen == 1
    assert len(moves) == 1 and moves[0].startswith("/v1/referrals/mine/offers/autism-outreach/")
    # Analytics counted both referrals: the demo compares its own, and names the other apart.
    assert demo.summary.confirmed_by_platform() == []
    assert demo.summary.others_sent == 1
    assert "not the demo's  1 referral sent by someone else" in demo.summary.render()
