"""Receive Signpost's webhooks and check every delivery's signature (Python standard library only).

    python examples/webhook_receiver.py --port 9000 --secret=<the secret POST /v1/subscriptions returned>

Answers 204 to a delivery signed with the secret within the last five minutes, and 401 to
anything else (a tampered body or event, a wrong secret, a signature too old to trust), so
Signpost retries only what was genuinely not received. Each delivery is a CloudEvent in HTTP
binary mode: `ce-*` headers and the event's JSON `data` as the body.

Delivery is at least once: an event whose 204 never reached Signpost comes again, freshly
signed, possibly hours later. The receiver remembers the `ce-id`s it handled lately and
answers a repeat 204 without handling it again; refusing it would only make Signpost retry
it for a day. A real receiver records each `ce-id` with the event's effect, in one
transaction, and keeps them at least as long as Signpost retries (a day).
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import sys
import threading
import time
from collections import OrderedDict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SIGNATURE_HEADER = "Signpost-Signature"
TOLERANCE_S = 300
MAX_BODY = 1_000_000
REMEMBERED_IDS = 100_000  # the latest ce-ids handled; the oldest is forgotten first


class HandledEvents:
    """The `ce-id`s handled lately, at most `limit` of them (a bounded memory, shared by threads)."""

    def __init__(self, limit: int = REMEMBERED_IDS) -> None:
        self._ids: OrderedDict[str, None] = OrderedDict()
        self._limit = limit
        self._lock = threading.Lock()

    def __contains__(self, event_id: str) -> bool:
        with self._lock:
            return event_id in self._ids

    def add(self, event_id: str) -> None:
        """Remember it once handled: an event that failed half-way must be handled when it comes again."""
        with self._lock:
            self._ids[event_id] = None
            if len(self._ids) > self._limit:
                self._ids.popitem(last=False)


def verify(
    secret: str,
    body: bytes,
    header: str,
    *,
    ce_id: str,
    ce_type: str,
    ce_subject: str,
    now: float | None = None,
) -> bool:
    """`header` is `t=<unix seconds>,v1=<hex>,v2=<hex>`. v2 is the hex HMAC-SHA256, keyed with the
    secret, of "<t>\\n<ce-id>\\n<ce-type>\\n<ce-subject>\\n" + body: it signs which event the body is,
    so a delivery replayed as another event type or under a new ce-id fails. (v1, over "<t>." +
    body only, is kept for receivers written before v2.)"""
    try:
        parts = dict(item.split("=", 1) for item in header.split(","))
        timestamp = int(parts["t"])
        claimed = parts["v2"].encode()  # as bytes: compare_digest raises on a str that isn't ASCII
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - timestamp) > TOLERANCE_S:
        return False
    signed = f"{timestamp}\n{ce_id}\n{ce_type}\n{ce_subject}\n".encode() + body
    expected = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest().encode()
    return hmac.compare_digest(expected, claimed)


def handler_for(secret: str) -> type[BaseHTTPRequestHandler]:
    handled = HandledEvents()

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            if length > MAX_BODY:
                self._answer(413, "too large")
                return
            body = self.rfile.read(length)
            if not verify(
                secret,
                body,
                self.headers.get(SIGNATURE_HEADER, ""),
                ce_id=self.headers.get("ce-id", ""),
                ce_type=self.headers.get("ce-type", ""),
                ce_subject=self.headers.get("ce-subject", ""),
            ):
                self._answer(401, "bad signature")
                print(
                    f"rejected a delivery with a bad or stale signature ({self.headers.get('ce-id')})",
                    flush=True,
                )
                return
            event_id = self.headers.get("ce-id", "")
            if event_id in handled:
                print(f"skipped {event_id}: already handled (a redelivery)", flush=True)
                self._answer(204, "")
                return
            data = json.loads(body)
            print(
                f"accepted {self.headers.get('ce-type')} for referral {self.headers.get('ce-subject')} "
                f"(event {event_id}): {sorted(data)}",
                flush=True,
            )
            handled.add(event_id)
            self._answer(204, "")

        def _answer(self, status: int, text: str) -> None:
            self.send_response(status)
            self.send_header("content-length", str(len(text)))
            self.end_headers()
            self.wfile.write(text.encode())

        def log_message(self, format: str, *args: object) -> None:  # one line per delivery is enough
            pass

    return Receiver


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--secret", default=os.environ.get("SIGNPOST_WEBHOOK_SECRET"),
                        help="the subscription's signing secret (or SIGNPOST_WEBHOOK_SECRET)")  # fmt: skip
    args = parser.parse_args()
    if not args.secret:
        parser.error(
            "give --secret (or set SIGNPOST_WEBHOOK_SECRET): the one POST /v1/subscriptions returned"
        )
    server = ThreadingHTTPServer((args.host, args.port), handler_for(args.secret))
    print(f"listening on http://{args.host}:{server.server_port}/", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
