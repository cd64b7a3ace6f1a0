"""Idempotency-Keys are the caller's own: another caller's key, however its parts read, and another
area's, never replays someone else's referral; a key stored before the upgrade is still replayed."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
import pytest_asyncio
import signpost.intake.referrals.service as referral_service
from signpost.intake.referrals.models import REFERRALS, ReferralRequest
from signpost.intake.referrals.service import (
    IDEMPOTENCY_KEYS,
    IdempotencyConflict,
    LegacyKeyLookup,
    PendingSubmission,
    Submission,
    prepare_submission,
    write_submissions,
)
from signpost.shared import mongo
from signpost.shared.auth.principal import Principal, Role
from signpost.shared.service import Runtime
from signpost.shared.settings import Settings

from tests.factories import referral

pytestmark = pytest.mark.asyncio(loop_scope="module")

OTHER_AREA = "E06000022"


@pytest_asyncio.fixture(loop_scope="module")
async def runtime(settings: Settings) -> AsyncIterator[Runtime]:
    runtime = Runtime.build(settings, "intake")
    runtime.enable_outbox()  # staged events wait in the outbox: no relay runs here
    try:
        yield runtime
    finally:
        await runtime.client.drop_database(runtime.db.name)
        await runtime.client.close()


def practitioner(
    subject: str, *, tenant: str = "E06000023", organisation: str = "ashley-primary"
) -> Principal:
    return Principal(subject=subject, role=Role.PRACTITIONER, organisation=organisation, tenant=tenant)


def pending(settings: Settings, principal: Principal, key: str | None, **body: object) -> PendingSubmission:
    assert principal.tenant == settings.tenant
    return prepare_submission(
        settings=settings,
        request=ReferralRequest.model_validate(referral(**body)),
        principal=principal,
        correlation_id="c-1",
        idempotency_key=key,
    )


async def submit(runtime: Runtime, submission: PendingSubmission) -> Submission:
    [outcome] = await write_submissions(runtime, [submission])
    assert isinstance(outcome, Submission), outcome
    return outcome


async def test_keys_whose_colon_joined_parts_read_alike_are_two_callers_keys(runtime: Runtime) -> None:
    """Subject "a" with key "x:k" and subject "a:x" with key "k" in one organisation were one key."""
    settings = runtime.settings
    first = await submit(runtime, pending(settings, practitioner("a"), "x:k"))
    second = await submit(runtime, pending(settings, practitioner("a:x"), "k"))

    assert not second.replayed
    assert second.referral["_id"] != first.referral["_id"]
    assert second.referral["created_by"] == "a:x"
    assert await runtime.db[REFERRALS].count_documents({}) == 2


async def test_another_areas_key_on_a_shared_database_replays_nothing(runtime: Runtime) -> None:
    """A database two areas shared before the start-up claim: area B's practitioner sending area A's
    body with A's key got A's referral back (201 Idempotent-Replayed), and B's was never stored."""
    here = runtime.settings
    there = here.model_copy(update={"tenant": OTHER_AREA})
    theirs = Runtime.build(there, "intake")  # the same database
    theirs.enable_outbox()
    try:
        a = await submit(runtime, pending(here, practitioner("senco@school"), "key-1"))
        b = await submit(theirs, pending(there, practitioner("senco@school", tenant=OTHER_AREA), "key-1"))
    finally:
        await theirs.client.close()

    assert not b.replayed and b.referral["_id"] != a.referral["_id"]
    stored = await runtime.db[REFERRALS].find_one({"_id": b.referral["_id"]})
    assert stored is not None and stored["tenant"] == OTHER_AREA


async def test_a_key_stored_before_the_upgrade_is_still_replayed_for_its_caller_alone(
    runtime: Runtime,
) -> None:
    """A retry across the upgrade carries a key stored under the old colon-joined id."""
    settings = runtime.settings
    senco = practitioner("a")
    original = pending(settings, senco, None, locality="Easton")
    stored = await submit(runtime, original)
    await runtime.db[IDEMPOTENCY_KEYS].insert_one(
        {"_id": "ashley-primary:a:x:k", "fingerprint": original.fingerprint,
         "referral_id": stored.referral["_id"], "created_at": stored.referral["submitted_at"]}
    )  # fmt: skip

    retried = await submit(runtime, pending(settings, senco, "x:k", locality="Easton"))
    assert retried.replayed and retried.referral["_id"] == stored.referral["_id"]
    [changed] = await write_submissions(runtime, [pending(settings, senco, "x:k", locality="Lockleaze")])
    assert isinstance(changed, IdempotencyConflict)  # the same key with another body, as before

    # The old id also reads as subject "a:x" with key "k": that caller's key is its own.
    other = await submit(runtime, pending(settings, practitioner("a:x"), "k", locality="Easton"))
    assert not other.replayed and other.referral["_id"] != stored.referral["_id"]
    # Nor is it another area's, whose caller has the same organisation and subject.
    there = settings.model_copy(update={"tenant": OTHER_AREA})
    theirs = Runtime.build(there, "intake")
    theirs.enable_outbox()
    try:
        elsewhere = await submit(
            theirs, pending(there, practitioner("a", tenant=OTHER_AREA), "x:k", locality="Easton")
        )
    finally:
        await theirs.client.close()
    assert not elsewhere.replayed and elsewhere.referral["_id"] != stored.referral["_id"]


async def test_the_old_id_is_looked_up_only_while_a_key_is_stored_under_one(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every new key is absent under its new id, so every keyed submission also looked its old id
    up, for ever: once no key is stored under an old id, it no longer does."""
    settings = runtime.settings
    await runtime.db[IDEMPOTENCY_KEYS].delete_many({})  # none under an old id: all pruned
    looked_up: list[str] = []

    async def recording(collection: Any, ids: Sequence[str], **kwargs: Any) -> dict[str, Any]:
        if collection.name == IDEMPOTENCY_KEYS:
            looked_up.extend(ids)
        return await mongo.find_by_ids(collection, ids, **kwargs)

    monkeypatch.setattr(referral_service, "find_by_ids", recording)
    legacy_keys = LegacyKeyLookup()
    await legacy_keys.refresh(runtime.db)
    assert not legacy_keys.needed
    senco = practitioner("b")
    first = pending(settings, senco, "k-1")
    [outcome] = await write_submissions(runtime, [first], legacy_keys=legacy_keys)
    assert isinstance(outcome, Submission) and not outcome.replayed
    assert looked_up == [first.key_id]  # the new id alone

    # A key stored under an old id (a replica of the last release, mid-upgrade): looked up again.
    stored = outcome.referral
    await runtime.db[IDEMPOTENCY_KEYS].insert_one(
        {"_id": "ashley-primary:b:k-2", "fingerprint": first.fingerprint,
         "referral_id": stored["_id"], "created_at": stored["submitted_at"]}
    )  # fmt: skip
    await legacy_keys.refresh(runtime.db)
    assert legacy_keys.needed
    looked_up.clear()
    retried = pending(settings, senco, "k-2")
    [again] = await write_submissions(runtime, [retried], legacy_keys=legacy_keys)
    assert isinstance(again, Submission) and again.replayed and again.referral["_id"] == stored["_id"]
    assert looked_up == [retried.key_id, "ashley-primary:b:k-2"]
