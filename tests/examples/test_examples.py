"""The partner examples, run as a partner runs them, against one platform on real servers.

In file order: the Kafka consumer and the webhook receiver see a referral routed by the
starter catalogue; the ORUK client then reads the catalogue after the demo area's import.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from signpost.intake.subscriptions.signing import sign

from signpost.platform.demo.area import build_area
from signpost.platform.demo.oruk import oruk_feed
from signpost.platform.processes import free_port
from tests.e2e.running import RunningPlatform, request, running_platform, wait_for
from tests.factories import referral

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
StartExample = Callable[..., Path]


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningPlatform]:
    with running_platform(tmp_path_factory.mktemp("examples")) as running:
        yield running


@pytest.fixture
def run_example(tmp_path: Path) -> Iterator[StartExample]:
    """Start an example script; its output goes to a file the test reads; stopped at the end."""
    started: list[subprocess.Popen[bytes]] = []

    def start(name: str, *args: str) -> Path:
        output = tmp_path / f"{name}.out"
        with output.open("wb") as sink:
            started.append(
                subprocess.Popen(
                    [sys.executable, str(EXAMPLES / name), *args], stdout=sink, stderr=subprocess.STDOUT
                )
            )
        return output

    yield start
    for process in started:
        process.kill()
        process.wait()


def submit(platform: RunningPlatform) -> str:
    status, body = request(
        platform.url("intake", "/v1/referrals"),
        referral(),
        token=platform.demo_token("practitioner", "school-ashley-primary"),
    )
    assert status == 201, body
    return str(body["id"])


def test_kafka_consumer_reads_the_routed_offer_as_a_cloudevent(
    platform: RunningPlatform, run_example: StartExample
) -> None:
    output = run_example(
        "kafka_consumer.py",
        "--bootstrap", f"127.0.0.1:{platform.ports['kafka']}",
        "--group", "partner-example-test",
        "--from-beginning",
    )  # fmt: skip
    referral_id = submit(platform)
    line = wait_for(
        lambda: next((ln for ln in output.read_text().splitlines() if referral_id in ln), None),
        timeout_s=60,
        what="the routed offer in the consumer's output",
    )
    assert f"referral {referral_id} -> autism-outreach" in line
    assert "la-inclusion-service" in line and "Covers" in line


def test_webhook_receiver_accepts_a_genuine_delivery_and_rejects_a_tampered_one(
    platform: RunningPlatform, run_example: StartExample
) -> None:
    port = free_port()
    agency = platform.demo_token("agency", "la-inclusion-service")
    status, subscription = request(
        platform.url("intake", "/v1/subscriptions"),
        # A secret may begin with "-" (one generated one in 64 does): the documented `--secret=`
        # form keeps the command line from reading it as an option.
        {
            "url": f"http://127.0.0.1:{port}/signpost",
            "event_types": ["*"],
            "secret": f"-{secrets.token_urlsafe(32)}",
        },
        token=agency,
    )
    assert status == 201, subscription
    secret = subscription["secret"]
    output = run_example("webhook_receiver.py", "--port", str(port), f"--secret={secret}")
    wait_for(lambda: "listening" in output.read_text(), timeout_s=20, what="the receiver listening")

    referral_id = submit(platform)
    wait_for(
        lambda: f"accepted uk.signpost.referral.routed.v1 for referral {referral_id}" in output.read_text(),
        timeout_s=60,
        what="a genuine, verified delivery",
    )

    def routed_delivery() -> Any:
        """Recorded once intake has the receiver's answer, a moment after the receiver printed it."""
        status, deliveries = request(
            platform.url("intake", f"/v1/subscriptions/{subscription['id']}/deliveries"), token=agency
        )
        assert status == 200
        routed = [
            d
            for d in deliveries["items"]
            if d["referral_id"] == referral_id and d["event_type"].endswith("routed.v1")
        ]
        return routed[0] if routed and routed[0]["status"] != "pending" else None

    delivered = wait_for(routed_delivery, timeout_s=30, what="the delivery's outcome recorded")
    assert delivered["status"] == "delivered" and delivered["attempts"][-1]["status_code"] == 204


def test_webhook_receiver_handles_an_event_once_and_answers_401_to_anything_but_a_genuine_one(
    run_example: StartExample,
) -> None:
    port, secret = free_port(), secrets.token_urlsafe(32)
    output = run_example("webhook_receiver.py", "--port", str(port), f"--secret={secret}")
    wait_for(lambda: "listening" in output.read_text(), timeout_s=20, what="the receiver listening")
    body = json.dumps({"referral_id": "r-1", "provision_id": "p-1"}).encode()
    event = {"ce-id": "e-1", "ce-type": "uk.signpost.referral.offer_accepted.v1", "ce-subject": "r-1"}
    now = int(time.time())
    genuine = {**event, "Signpost-Signature": signature(secret, body, event, now)}

    assert post(port, body, genuine) == 204
    # Delivered twice (Signpost missed the first 204): acknowledged, handled once.
    redelivered = {**event, "Signpost-Signature": signature(secret, body, event, now + 1)}
    assert post(port, body, redelivered) == 204
    wait_for(lambda: "skipped e-1: already handled" in output.read_text(), timeout_s=5, what="the repeat")
    assert output.read_text().count("accepted uk.signpost.referral.offer_accepted.v1") == 1
    assert post(port, body.replace(b"p-1", b"p-2"), genuine) == 401  # tampered body
    # The same body is an offer_started too, and a new ce-id would get past deduplication.
    assert post(port, body, {**genuine, "ce-type": "uk.signpost.referral.offer_started.v1"}) == 401
    assert post(port, body, {**genuine, "ce-id": "e-2"}) == 401
    stale = {**event, "Signpost-Signature": signature(secret, body, event, now - 3600)}
    assert post(port, body, stale) == 401  # replayed
    assert post(port, body, {**event, "Signpost-Signature": f"t={now},v1=é,v2=é"}) == 401  # not ASCII
    assert post(port, body, event) == 401
    assert "rejected a delivery" in output.read_text()


def signature(secret: str, body: bytes, event: dict[str, str], timestamp: int) -> str:
    """As Signpost's dispatcher signs the event."""
    return sign(
        secret=secret,
        body=body,
        timestamp=timestamp,
        event_id=event["ce-id"],
        event_type=event["ce-type"],
        subject=event["ce-subject"],
    )


def test_oruk_client_reads_the_imported_catalogue(platform: RunningPlatform) -> None:
    area = build_area()
    status, report = request(
        platform.url("routing", "/v1/catalogue/import"),
        {"feed": oruk_feed(area)},
        token=platform.demo_token("admin", "la-digital"),
    )
    assert status == 200, report
    assert report["totals"]["created"] == len(area.provisions)
    status, catalogue = request(platform.url("routing", "/v1/provisions?limit=1"))
    assert status == 200

    client = subprocess.run(
        [sys.executable, str(EXAMPLES / "oruk_client.py"), "--base-url", platform.url("routing", "/oruk"),
         "--per-page", "25"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert client.returncode == 0, client.stderr
    text = client.stdout
    assert f"{catalogue['total']} services" in text
    for provision in area.provisions:
        assert provision.name in text


def post(port: int, body: bytes, headers: dict[str, str]) -> int:
    req = urllib.request.Request(f"http://127.0.0.1:{port}/signpost", data=body, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code
