"""The bare FastAPI endpoint the end-to-end benchmark measures intake against: the same route and
body, parsed as JSON and answered 201 with an id, with no validation, database or broker.

    python -m uvicorn bare_fastapi:app --app-dir bench --port 8080
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import FastAPI

app = FastAPI()


@app.post("/v1/referrals", status_code=201)
async def accept(body: dict[str, Any]) -> dict[str, str]:
    return {"id": str(uuid.uuid4())}
