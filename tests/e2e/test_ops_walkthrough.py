"""What issue 5 asks a new user to check, as README tells them to: on `signpost run`, stop a
consumer with `signpost service stop routing`, watch its lag rise in the ops view in a real
browser while referrals arrive, start it again and watch the lag fall to 0; then
`signpost analytics rebuild` and see that it says the rebuilt projections equal the live ones."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser import Browser
from tests.e2e import test_dashboard_browser as dashboard
from tests.e2e.running import RunningPlatform, request, running_platform, wait_for
from tests.e2e.test_dashboard_browser import dashboard_link, table, wait_for_chart, wait_until
from tests.factories import CHILD, referral

# The browser test's fixture: a fresh profile per test.
browser = dashboard.browser

REFERRALS = 6
ROUTING_GROUP = "signpost-E06000023-routing"  # the default SIGNPOST_TENANT's group
LOCALITY = "Lawrence Hill"  # this test's own, whatever else the module's platform is fed

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningPlatform]:
    with running_platform(tmp_path_factory.mktemp("ops"), OPS_SAMPLE_INTERVAL_S="1") as running:
        yield running


def signpost(platform: RunningPlatform, *args: str, **settings: str) -> subprocess.CompletedProcess[str]:
    """A command in another terminal, from the same clone (so the same data directory)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("SIGNPOST_")}
    env["SIGNPOST_DATA_DIR"] = str(platform.output.parent / "data")
    env.update({f"SIGNPOST_{name.upper()}": value for name, value in settings.items()})
    return subprocess.run(
        [sys.executable, "-m", "signpost.platform.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=150,
        check=False,
    )


def submit(platform: RunningPlatform, practitioner: str, number: int, locality: str = "Ashley") -> str:
    body = referral(
        child={
            **{k: v for k, v in CHILD.items() if k not in ("nhs_number", "upn")},
            "given_name": f"Lag{number}",
        },
        locality=locality,
    )
    status, created = request(platform.url("intake", "/v1/referrals"), body, token=practitioner)
    assert status == 201, created
    return str(created["id"])


def routing_lag(traces: list[dict[str, Any]]) -> list[int | None]:
    trace = next(t for t in traces if t["name"] == ROUTING_GROUP)
    return list(trace["y"])


def test_lag_rises_while_a_consumer_is_stopped_and_falls_when_it_is_back_then_rebuild_compares(
    platform: RunningPlatform, browser: Browser
) -> None:
    practitioner = platform.demo_token("practitioner", "school-ashley-primary")
    ops = browser.open(dashboard_link(platform, "Ops view, as ops"))
    wait_until(
        ops,
        "() => [...document.querySelectorAll('#health-table tbody tr')].length === 3",
        what="service health",
    )

    stopped = signpost(platform, "service", "stop", "routing")
    assert stopped.returncode == 0, stopped.stderr
    assert "routing stopped" in stopped.stdout
    assert signpost(platform, "service", "stop", "routing").returncode == 2  # already stopped: says so
    ids = [submit(platform, practitioner, number, LOCALITY) for number in range(REFERRALS)]

    wait_for_chart(
        ops,
        "lag-history-chart",
        f"ts => ts.some(t => t.name === '{ROUTING_GROUP}' && Math.max(...t.y.filter(v => v !== null)) >= {REFERRALS})",
    )
    wait_until(
        ops,
        "() => [...document.querySelectorAll('#health-table tbody tr')]"
        ".some(r => r.cells[0].textContent === 'routing' && r.cells[1].textContent === 'unreachable')",
        what="routing shown as unreachable",
    )
    # Said in words, not as the HTTP client's exception name (ConnectError).
    routing = next(row for row in table(ops, "health-table") if row[0] == "routing")
    assert routing[2].startswith("http: not answering ("), routing
    browser.screenshot(ops, "ops-routing-stopped")
    for referral_id in ids:  # nothing routed them meanwhile; the rest of the platform kept going
        status, found = request(platform.url("intake", f"/v1/referrals/{referral_id}"), token=practitioner)
        assert status == 200 and found["status"] == "submitted", found

    started = signpost(platform, "service", "start", "routing")
    assert started.returncode == 0, started.stderr
    assert "running again" in started.stdout

    lag = wait_for_chart(
        ops,
        "lag-history-chart",
        f"ts => ts.some(t => t.name === '{ROUTING_GROUP}' && t.y[t.y.length - 1] === 0 "
        f"&& Math.max(...t.y.filter(v => v !== null)) >= {REFERRALS})",
    )
    assert max(v for v in routing_lag(lag) if v is not None) >= REFERRALS
    wait_until(
        ops,
        "() => [...document.querySelectorAll('#health-table tbody tr')].every(r => r.cells[1].textContent === 'ready')",
        what="every service ready again",
    )
    browser.screenshot(ops, "ops-routing-restarted")
    assert [row[:2] for row in table(ops, "health-table")] == [
        ["intake", "ready"],
        ["routing", "ready"],
        ["analytics", "ready"],
    ]
    for referral_id in ids:
        wait_for(
            lambda referral_id=referral_id: (
                request(platform.url("intake", f"/v1/referrals/{referral_id}"), token=practitioner)[1][
                    "status"
                ]
                != "submitted"
            ),
            timeout_s=30,
            what=f"{referral_id} decided after routing came back",
        )

    admin = platform.demo_token("admin", "la-digital")
    summary_url = platform.url("analytics", f"/v1/pulse/summary?locality={LOCALITY.replace(' ', '+')}")

    def counted() -> dict[str, object] | None:
        answer = request(summary_url, token=admin)[1]
        figures = {m["measure"]: m["current"]["value"] for m in answer["measures"]}
        return figures if figures["submitted"] == REFERRALS and figures["routed"] == REFERRALS else None

    before = wait_for(counted, timeout_s=30, what="analytics counted the referrals and their routing")

    rebuilt = signpost(
        platform,
        "analytics",
        "rebuild",
        KAFKA_BOOTSTRAP=f"127.0.0.1:{platform.ports['kafka']}",
        MONGODB_URL=f"mongodb://127.0.0.1:{platform.ports['mongodb']}/?directConnection=true",
    )
    assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
    assert "projection documents are identical" in rebuilt.stdout, rebuilt.stdout
    assert counted() == before  # the pulse now reads the rebuilt set: the same figures


def test_service_commands_say_what_is_wrong(platform: RunningPlatform, tmp_path: Path) -> None:
    starting = signpost(platform, "service", "start", "analytics")
    assert starting.returncode == 2 and "analytics is already running" in starting.stderr
    elsewhere = subprocess.run(
        [sys.executable, "-m", "signpost.platform.cli", "service", "stop", "routing"],
        env={**os.environ, "SIGNPOST_DATA_DIR": str(tmp_path / "nothing-runs-here")},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert elsewhere.returncode == 2 and "no `signpost run` is listening" in elsewhere.stderr


def test_the_drill_down_points_out_a_locality_no_referral_came_from(
    platform: RunningPlatform, browser: Browser
) -> None:
    practitioner = platform.demo_token("practitioner", "school-ashley-primary")
    submit(platform, practitioner, 99)  # from Ashley
    link = dashboard_link(platform, "Dashboard, as the analyst").replace(
        "/dashboard/#", "/dashboard/drill-down?locality=Ashley&compare=Ashly#"
    )
    page = browser.open(link)
    wait_until(
        page,
        "() => document.getElementById('described').textContent.includes("
        "'No referral came from Ashly in this period: check the spelling')",
        what="the misspelt locality pointed out",
    )
    assert "No referral came from Ashley" not in (page.text_content("#described") or "")
