"""An HTTP service whose one endpoint fails, logging as a Signpost service does.

`python -m tests.unit.shared.failing_service <json|console>` serves one request that
carries a child's name and a bearer token, lets the handler fail with both in its local
variables, and stops: stderr holds what a real service would have logged.
"""

from __future__ import annotations

import sys
import threading
import time

import httpx
import uvicorn
from fastapi import FastAPI, Request
from pymongo.errors import BulkWriteError
from signpost.shared.logging import configure_logging, get_logger
from signpost.shared.settings import Settings

from signpost.platform.processes import free_port

CHILD_NAME = "Zephyrine Quillfeather"
BEARER_TOKEN = "eyJhbGciOiJFZERTQSJ9.planted-claims.planted-signature"
FAILURE = "RuntimeError: the referral could not be stored"
REFUSED = "Document failed validation"

app = FastAPI()
log = get_logger(__name__)


@app.post("/v1/referrals")
async def submit(request: Request) -> None:
    referral = await request.json()  # a local rich would print
    authorization = request.headers["authorization"]  # noqa: F841
    try:  # a failed write's error holds the document written
        raise BulkWriteError({"writeErrors": [{"index": 0, "code": 121, "errmsg": REFUSED, "op": referral}]})
    except BulkWriteError as exc:
        log.exception("could not store the referral")  # a line of ours; uvicorn logs the one raised
        raise RuntimeError("the referral could not be stored") from exc


def main(log_format: str) -> None:
    configure_logging(Settings(log_format=log_format), service="failing")
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False, lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    httpx.post(
        f"http://127.0.0.1:{port}/v1/referrals",
        json={"child": {"name": CHILD_NAME}},
        headers={"Authorization": f"Bearer {BEARER_TOKEN}"},
    )
    server.should_exit = True
    thread.join(timeout=10)


if __name__ == "__main__":
    main(sys.argv[1])
