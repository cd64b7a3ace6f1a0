"""Intake's group commit on the real database: submissions written together each keep their own answer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from pymongo import AsyncMongoClient
from signpost.intake.app import create_app as create_intake
from signpost.intake.referrals import service
from signpost.intake.referrals.models import REFERRALS, ReferralRequest
from signpost.intake.referrals.service import (
    CHILD_DETAILS,
    IDEMPOTENCY_KEYS,
    IdempotencyConflict,
    PendingSubmission,
    Submission,
    prepare_submission,
    write_submissions,
)
from signpost.shared.auth.principal import Principal, Role
from signpost.shared.mongo import Document, find_by_ids
from signpost.shared.outbox import OUTBOX
from signpost.shared.service import Runtime
from signpost.shared.settings import Settings

from tests.conftest import Tokens, serving
from tests.factories import referral

pytestmark = pytest.mark.asyncio(loop_scope="module")  # the `intake` fixture's loop

SENCO = Principal(
    subject="senco@ashley", role=Role.PRACTITIONER, organisation="ashley-primary", tenant="E06000023"
)


@pytest_asyncio.fixture(loop_scope="module")
async def runtime(settings: Settings) -> AsyncIterator[Runtime]:
    runtime = Runtime.build(settings, "intake")
    runtime.enable_outbox()  # staged events wait in the outbox: no relay runs here
    try:
        yield runtime
    finally:
        await runtime.client.drop_database(runtime.db.name)
        await runtime.client.close()


def pending(settings: Settings, key: str | None = None, **overrides: object) -> PendingSubmission:
    return prepare_submission(
        settings=settings,
        request=ReferralRequest.model_validate(referral(**overrides)),
        principal=SENCO,
        correlation_id="c-1",
        idempotency_key=key,
    )


async def test_a_group_is_stored_whole_and_each_submission_gets_its_own_answer(runtime: Runtime) -> None:
    settings = runtime.settings
    stored_before = pending(settings, "key-stored-1")
    [first] = await write_submissions(runtime, [stored_before])
    assert isinstance(first, Submission) and not first.replayed

    group = [
        pending(settings),  # 0: new, no key
        pending(settings, "key-new-0001", locality="Easton"),  # 1: new, with a key
        pending(settings, "key-new-0001", locality="Easton"),  # 2: same key and body as 1: replays 1
        pending(settings, "key-new-0001", locality="Lockleaze"),  # 3: same key as 1, another body
        pending(settings, "key-stored-1"),  # 4: a key stored earlier, same body: replays it
        pending(settings, "key-stored-1", locality="Easton"),  # 5: a key stored earlier, another body
        pending(settings, safeguarding_concern=True),  # 6: new, escalated at once
    ]
    outcomes = await write_submissions(runtime, group)

    new = [outcomes[i] for i in (0, 1, 6)]
    assert all(isinstance(o, Submission) and not o.replayed for o in new)
    assert isinstance(outcomes[2], Submission) and outcomes[2].replayed
    assert outcomes[2].referral["_id"] == group[1].referral["_id"]
    assert isinstance(outcomes[3], IdempotencyConflict)
    assert isinstance(outcomes[4], Submission) and outcomes[4].replayed
    assert outcomes[4].referral["_id"] == stored_before.referral["_id"]
    assert isinstance(outcomes[5], IdempotencyConflict)

    db = runtime.db
    written = {group[i].referral["_id"] for i in (0, 1, 6)} | {stored_before.referral["_id"]}
    assert {d["_id"] async for d in db[REFERRALS].find({})} == written
    assert {d["_id"] async for d in db[CHILD_DETAILS].find({})} == written
    staged = [d async for d in db[OUTBOX].find({}).sort("_id")]
    # One submitted event per referral, plus the safeguarding escalation, in creation order.
    assert len(staged) == 5 and [d["_id"] for d in staged] == sorted(d["_id"] for d in staged)
    escalated = [d for d in staged if d["headers"]["ce_type"].endswith("referral.escalated.v1")]
    assert [d["key"] for d in escalated] == [group[6].referral["_id"]]


async def test_concurrent_posts_each_get_their_own_201_and_referral(
    intake: httpx.AsyncClient, tokens: Tokens
) -> None:
    token = {"Authorization": f"Bearer {tokens.practitioner()}"}
    bodies = [referral(locality=f"Locality {n}") for n in range(12)]
    keyed = {"Idempotency-Key": "concurrent-key-1"}
    answers = await asyncio.gather(
        *(intake.post("/v1/referrals", json=body, headers=token) for body in bodies),
        intake.post("/v1/referrals", json=bodies[0], headers={**token, **keyed}),
        intake.post("/v1/referrals", json=bodies[0], headers={**token, **keyed}),
    )
    plain, same_key = answers[:12], answers[12:]
    assert [a.status_code for a in plain] == [201] * 12
    assert len({a.json()["id"] for a in plain}) == 12
    for answer, body in zip(plain, bodies, strict=True):
        stored = await intake.get(f"/v1/referrals/{answer.json()['id']}", headers=token)
        assert stored.json()["locality"] == body["locality"]
    # The same key and body at once: one referral, the other answer a replay of it.
    assert [a.status_code for a in same_key] == [201, 201]
    assert same_key[0].json()["id"] == same_key[1].json()["id"]
    assert sorted(a.headers.get("Idempotent-Replayed", "") for a in same_key) == ["", "true"]
    other_body = await intake.post("/v1/referrals", json=bodies[1], headers={**token, **keyed})
    assert other_body.status_code == 409


async def test_beyond_its_waiting_limit_intake_refuses_a_submission_at_once_and_stores_none_of_it(
    module_settings: Settings, tokens: Tokens
) -> None:
    """Past capacity, queueing everything answers everyone late; the excess is told to come back."""
    # One submission may wait, and the first waits 100 ms for company: the second finds it waiting.
    crowded = module_settings.model_copy(
        update={"intake_waiting_max": 1, "intake_group_commit_wait_ms": 100.0}
    )
    token = {"Authorization": f"Bearer {tokens.practitioner()}"}
    bodies = [referral(locality="Crowded A"), referral(locality="Crowded B")]
    async with serving(create_intake(crowded)) as intake:
        answers = await asyncio.gather(
            *(intake.post("/v1/referrals", json=body, headers=token) for body in bodies)
        )
        assert sorted(a.status_code for a in answers) == [201, 503]
        [refused] = [a for a in answers if a.status_code == 503]
        assert refused.headers["Retry-After"] == "1"
        assert "at capacity" in refused.json()["detail"] and "nothing was stored" in refused.json()["detail"]
        [accepted] = [a for a in answers if a.status_code == 201]
    client: AsyncMongoClient[Document] = AsyncMongoClient(crowded.mongodb_url)
    try:
        referrals = client[crowded.database_name("intake")][REFERRALS]
        crowded_ones = {"locality": {"$in": ["Crowded A", "Crowded B"]}}
        assert [d["_id"] async for d in referrals.find(crowded_ones)] == [accepted.json()["id"]]
    finally:
        await client.close()


async def test_a_key_another_process_stored_after_the_lookup_is_answered_as_a_replay(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two intake processes given the same Idempotency-Key at once (a client retrying on another
    replica): the loser's insert of the key fails on the unique id, and the retry answers it as
    the winner was answered, never with an error."""
    settings = runtime.settings
    winner, loser = pending(settings, "key-raced-01"), pending(settings, "key-raced-01")
    looked_up = find_by_ids

    async def before_the_winner_committed(collection: Any, ids: list[str], **options: Any) -> Any:
        if collection.name == IDEMPOTENCY_KEYS and ids == [loser.key_id]:
            monkeypatch.setattr(service, "find_by_ids", looked_up)  # stale once only
            await write_submissions(runtime, [winner])  # the other process commits meanwhile
            return {}
        return await looked_up(collection, ids, **options)

    monkeypatch.setattr(service, "find_by_ids", before_the_winner_committed)
    [outcome] = await write_submissions(runtime, [loser])

    assert isinstance(outcome, Submission) and outcome.replayed
    assert outcome.referral["_id"] == winner.referral["_id"]
    assert await runtime.db[REFERRALS].count_documents({"_id": loser.referral["_id"]}) == 0
