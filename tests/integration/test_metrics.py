"""`/metrics` on every service: Prometheus text with route templates, handler timings,
outbox backlog and consumer lag, and no personal data in any label."""

from __future__ import annotations

from contextlib import AsyncExitStack
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from signpost.analytics.app import create_app as create_analytics
from signpost.intake.app import create_app as create_intake
from signpost.routing.app import create_app as create_routing
from signpost.shared.settings import Settings
from signpost.shared.topics import Topics

from tests.conftest import Tokens, eventually, serving
from tests.factories import CHILD, referral


def samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    return [
        (sample.name, sample.labels, sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    ]


async def test_every_service_exposes_metrics_without_personal_data(settings: Settings) -> None:
    topics = Topics.from_settings(settings)
    practitioner = {"Authorization": f"Bearer {Tokens(settings).practitioner()}"}
    async with AsyncExitStack() as stack:
        intake, routing, analytics = [
            await stack.enter_async_context(serving(factory(settings)))
            for factory in (create_intake, create_routing, create_analytics)
        ]
        created = await intake.post("/v1/referrals", json=referral(), headers=practitioner)
        assert created.status_code == 201, created.text
        referral_id = created.json()["id"]

        async def routed() -> Any:
            found = (await intake.get(f"/v1/referrals/{referral_id}", headers=practitioner)).json()
            return found if found["status"] == "routed" else None

        await eventually(routed, what="routed")
        assert (await intake.get("/v1/referrals/no-such-id", headers=practitioner)).status_code == 404
        assert (await intake.get("/no/such/path")).status_code == 404

        async def analytics_counted() -> list[tuple[str, dict[str, str], float]] | None:
            found = samples((await analytics.get("/metrics")).text)
            handled = {
                labels["event_type"]
                for name, labels, value in found
                if name == "signpost_event_handler_duration_seconds_count" and value >= 1
            }
            return found if "uk.signpost.referral.routed.v1" in handled else None

        await eventually(analytics_counted, what="analytics handler timings")
        for client, service in ((intake, "intake"), (routing, "routing"), (analytics, "analytics")):
            response = await client.get("/metrics")
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/plain; version=")
            text = response.text
            # No id, name, date of birth, postcode or NHS number in any label or value.
            for secret in (
                referral_id,
                CHILD["given_name"],
                CHILD["family_name"],
                "2018-03-14",
                "BS4",
                "9434765919",
            ):
                assert secret.lower() not in text.lower(), (service, secret)
            found = samples(text)
            handled = {
                labels["event_type"]
                for name, labels, _ in found
                if name == "signpost_event_handler_duration_seconds_count" and labels["service"] == service
            }
            assert "uk.signpost.referral.submitted.v1" in handled, (service, handled)
            lag = {
                (labels["group"], labels["topic"])
                for name, labels, _ in found
                if name == "signpost_consumer_lag"
            }
            assert lag == {(topics.group(service), topics.referrals)}, (service, lag)
            assert ("signpost_consumer_lag_readable", {"service": service}, 1.0) in found

        found = samples((await intake.get("/metrics")).text)
        requests = {
            (labels["method"], labels["route"], labels["status"])
            for name, labels, value in found
            if name == "signpost_http_request_duration_seconds_count" and value >= 1
        }
        assert ("POST", "/v1/referrals", "201") in requests
        assert ("GET", "/v1/referrals/{referral_id}", "200") in requests
        assert ("GET", "/v1/referrals/{referral_id}", "404") in requests
        assert ("GET", "<unmatched>", "404") in requests
        assert all("no-such" not in route and "/no/such" not in route for _, route, _ in requests)
        assert ("signpost_outbox_pending", {"service": "intake"}, 0.0) in found
        # Analytics has no outbox: no backlog series rather than a misleading 0.
        analytics_found = samples((await analytics.get("/metrics")).text)
        assert not [name for name, _, _ in analytics_found if name == "signpost_outbox_pending"]
