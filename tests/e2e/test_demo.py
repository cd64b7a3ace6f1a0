"""`signpost demo` against a running platform: its closing summary is what the platform counted."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from signpost.platform.processes import free_port
from tests.e2e.running import RunningPlatform, request, running_platform, wait_for

REFERRALS = 24


def demo(platform_data: Path, urls: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SIGNPOST_DATA_DIR": str(platform_data)}  # the platform's development issuer
    flags = [item for service, url in urls.items() for item in (f"--{service}-url", url)]
    return subprocess.run(
        [sys.executable, "-m", "signpost.platform.cli", "demo", *flags, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def urls_of(platform: RunningPlatform) -> dict[str, str]:
    return {service: platform.url(service, "") for service in ("intake", "routing", "analytics")}


def number(pattern: str, text: str) -> int:
    match = re.search(pattern, text)
    assert match, (pattern, text)
    return int(match.group(1))


def test_demo_streams_referrals_and_the_platform_confirms_its_summary(tmp_path: Path) -> None:
    with running_platform(tmp_path) as platform:
        result = demo(tmp_path / "data", urls_of(platform), "--referrals", str(REFERRALS), "--rate", "6")
        assert result.returncode == 0, result.stdout + result.stderr
        out = result.stdout.split("Signpost demo:", 1)[1]  # the closing summary, not the progress lines

        assert "imported 59 new" in out
        assert "100 registered with analytics" in out
        assert number(r"referrals sent  (\d+)", out) == REFERRALS
        assert number(r"accepted by HTTP \(201\) (\d+)", out) == REFERRALS
        routed = number(r"routed (\d+),", out)
        safeguarding = number(r"escalated (\d+) \(safeguarding\)", out)
        ehc = number(r"\+ (\d+) \(EHC needs assessment\)", out)
        unmatched = number(r"unmatched (\d+),", out)
        assert routed + safeguarding + ehc + unmatched == REFERRALS
        assert number(r"awaiting a decision (\d+)", out) == 0
        assert "analytics       confirms these counts" in out

        admin = platform.demo_token("admin", "la-digital")
        status, pulse = request(platform.url("analytics", "/v1/pulse"), token=admin)
        assert status == 200
        assert pulse["submitted"] == REFERRALS
        assert pulse["by_outcome"]["escalated_safeguarding"] == safeguarding
        assert pulse["by_outcome"]["escalated_ehc_assessment"] == ehc
        assert pulse["by_outcome"]["awaiting_decision"] == 0
        # Re-routes after a decline are further routed decisions, never fewer.
        assert pulse["by_outcome"]["routed"] >= routed
        # The dashboard's funnel is what the demo's by-referral line says (the pulse counts referrals,
        # the agencies line counts offers); coverage has the area's register to measure against.
        by_referral = {
            measure: number(rf"by referral .*{label} (\d+)", out)
            for measure, label in (
                ("accepted", "accepted"),
                ("started", "started"),
                ("completed", "completed"),
                ("declined", "with an offer declined"),
            )
        }

        counted: dict[str, float] = {}

        def summary_agrees() -> dict[str, Any] | None:
            status, summary = request(platform.url("analytics", "/v1/pulse/summary"), token=admin)
            assert status == 200
            counted.update({m["measure"]: m["current"]["value"] for m in summary["measures"]})
            return summary if all(counted[k] == v for k, v in by_referral.items()) else None

        try:
            summary = wait_for(summary_agrees, timeout_s=30, what=f"the pulse summary counting {by_referral}")
        except AssertionError as failed:
            raise AssertionError(f"{failed}; it counted {counted}") from None
        coverage = summary["coverage"]
        assert coverage["registered_settings"] == 100 and coverage["unregistered_referring"] == 0
        assert 0 < coverage["referring_settings"] <= REFERRALS

        accepted = number(r"accepted (\d+), declined", out)
        declined = number(r"declined (\d+) \{", out)
        assert accepted + declined == number(r"offers (\d+): accepted", out) > 0
        token = platform.demo_token("admin", "la-digital")
        status, page = request(platform.url("routing", "/v1/provisions?limit=200"), token=token)
        assert status == 200 and page["total"] >= 59
        status, feed = request(platform.url("routing", "/oruk/services?per_page=100"))
        assert status == 200 and feed["total_items"] >= 59


def test_an_unreachable_platform_is_a_clear_error_and_exit_2(tmp_path: Path) -> None:
    urls = {service: f"http://127.0.0.1:{free_port()}" for service in ("intake", "routing", "analytics")}
    result = demo(tmp_path, urls, "--referrals", "1")
    assert result.returncode == 2
    assert f"intake is not reachable at {urls['intake']}" in result.stderr
    assert "signpost run" in result.stderr


def test_run_demo_populates_the_platform_within_a_minute(tmp_path: Path) -> None:
    with running_platform(tmp_path, "--demo") as platform:

        def counted() -> int:
            admin = platform.demo_token("admin", "la-digital")
            status, pulse = request(platform.url("analytics", "/v1/pulse"), token=admin)
            return int(pulse["submitted"]) if status == 200 and pulse["by_outcome"]["routed"] else 0

        wait_for(counted, timeout_s=60, what="referrals routed and counted")
        assert re.search(r"^demo      \| \[#*\.*\] \d+/\d+  sent \d+", platform.lines(), re.MULTILINE)
        status, page = request(platform.url("routing", "/v1/provisions?limit=1"))
        assert status == 200 and page["total"] >= 59  # the area's Local Offer, imported
        # Ctrl-C while the demo is still sending: the platform stops calmly, with no traceback for
        # each request that was in flight.
        platform.process.send_signal(signal.SIGINT)
        assert platform.process.wait(timeout=60) == 0
        assert "Traceback" not in platform.lines(), platform.lines()[-3000:]
