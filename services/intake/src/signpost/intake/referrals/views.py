"""Practitioners' endpoints: submit a referral, follow it, add to it, withdraw it."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request, Response, status
from signpost.intake.audit.service import Purpose, record_read
from signpost.intake.paging import Cursor, newest_first
from signpost.intake.referrals.access import (
    child_details_refusal,
    note_reader,
    visible_referrals,
    withholds_address,
)
from signpost.intake.referrals.models import (
    REFERRALS,
    ChildDetailsView,
    FrontDoor,
    InformationRequest,
    ReferralAccepted,
    ReferralPage,
    ReferralRequest,
    ReferralView,
    WithdrawRequest,
)
from signpost.intake.referrals.moves import REFERRAL_MOVES, added_information, withdrawal
from signpost.intake.referrals.service import CHILD_DETAILS, Decision, Submissions, change_referral
from signpost.shared.auth.dependencies import require_roles
from signpost.shared.auth.principal import Principal, Role
from signpost.shared.auth.ratelimit import rate_limited_write
from signpost.shared.lifecycle import ReferralStatus, allowed_moves
from signpost.shared.mongo import Document
from signpost.shared.service import RuntimeDep, refused
from signpost.shared.settings import Settings
from signpost.shared.text import STORED, SingleLine, in_words
from signpost.shared.vocabulary import NeedCode

router = APIRouter(prefix="/v1/referrals", tags=["referrals"])

PractitionerDep = Annotated[Principal, Depends(require_roles(Role.PRACTITIONER))]
ReaderDep = Annotated[Principal, Depends(require_roles(Role.PRACTITIONER, Role.AGENCY, Role.ADMIN))]
ChildReaderDep = Annotated[Principal, Depends(require_roles(Role.PRACTITIONER, Role.AGENCY))]
IDEMPOTENCY_KEY = r"^[A-Za-z0-9_.:-]+$"
IdempotencyKey = Annotated[
    str | None,
    in_words(IDEMPOTENCY_KEY, "made of A-Z a-z 0-9 _ . : - only"),
    Header(
        alias="Idempotency-Key",
        min_length=8,
        max_length=128,
        json_schema_extra={"pattern": IDEMPOTENCY_KEY},
        description="Retry safely: the same key and body return the same referral; a different body is 409. "
        "A key is remembered for 7 days after its first use; after that it makes a new referral.",
    ),
]
Responses = dict[int | str, dict[str, Any]]
NOT_FOUND: Responses = {404: {"description": "No such referral that you may see"}}
CONFLICT: Responses = {
    409: {"description": "Not allowed in the referral's current state; says which moves are"}
}


def referral_view(referral: Document, principal: Principal) -> ReferralView:
    """The referral as `principal` sees it: its allowed moves are those the caller's endpoints take
    (withdrawing is the practitioner's; agencies find their offers' moves in `GET /v1/offers`), and
    the timeline's notes it may not read are withheld (`note_reader`)."""
    current = ReferralStatus(referral["status"])
    yours = REFERRAL_MOVES if principal.role is Role.PRACTITIONER else frozenset()
    fields = {key: value for key, value in referral.items() if key in ReferralView.model_fields}
    may_read = note_reader(principal, referral)
    timeline = [
        entry if may_read(entry) or not entry.get("note") else {**entry, "note": "", "note_withheld": True}
        for entry in referral["timeline"]
    ]
    return ReferralView(
        **{**fields, "timeline": timeline},
        id=referral["_id"],
        referrer_organisation=referral["organisation"],
        allowed_moves=allowed_moves(current, yours),
    )


async def apply_decision(
    request: Request,
    runtime: RuntimeDep,
    principal: Principal,
    referral_id: str,
    decide: Callable[[Document], Decision],
) -> ReferralView:
    """Apply a move to a referral the caller may see, and answer with the referral as it now is."""
    updated = await change_referral(
        runtime=runtime,
        referral_id=referral_id,
        principal=principal,
        correlation_id=request.state.correlation_id,
        decide=decide,
    )
    return referral_view(updated, principal)


def front_door(settings: Settings) -> FrontDoor:
    return FrontDoor(
        name=settings.front_door_name,
        phone=settings.front_door_phone,
        message=(
            f"This referral has gone to {settings.front_door_name} because of the safeguarding concern. "
            f"Phone them now on {settings.front_door_phone} as well; if a child is in immediate danger, call 999."
        ),
    )


@router.post(
    "",
    dependencies=[Depends(rate_limited_write)],
    status_code=status.HTTP_201_CREATED,
    response_model=ReferralAccepted,
    summary="Submit a referral",
    description=(
        "Stores the referral and its `referral.submitted.v1` event together; a 201 means it is kept, "
        "even while Kafka is down. A safeguarding concern escalates at once to the front door "
        "(`referral.escalated.v1`) and the response says whom to phone."
    ),
    responses={409: {"description": "Idempotency-Key reused with a different body"}},
)
async def post_referral(
    body: ReferralRequest,
    request: Request,
    response: Response,
    runtime: RuntimeDep,
    principal: PractitionerDep,
    idempotency_key: IdempotencyKey = None,
) -> ReferralAccepted:
    submissions: Submissions = request.app.state.submissions
    submission = await submissions.submit(
        request=body,
        principal=principal,
        correlation_id=request.state.correlation_id,
        idempotency_key=idempotency_key,
    )
    referral = submission.referral
    response.headers["Location"] = f"/v1/referrals/{referral['_id']}"
    if submission.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return ReferralAccepted(
        id=referral["_id"],
        status=referral["status"],
        submitted_at=referral["submitted_at"],
        front_door=front_door(runtime.settings) if referral["safeguarding_concern"] else None,
    )


@router.get("", response_model=ReferralPage, summary="Referrals you may see, newest first")
async def list_referrals(
    runtime: RuntimeDep,
    principal: ReaderDep,
    status_: Annotated[ReferralStatus | None, Query(alias="status")] = None,
    locality: Annotated[SingleLine | None, Query(max_length=64)] = None,
    setting_id: Annotated[SingleLine | None, Query(max_length=64)] = None,
    need_code: NeedCode | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 25,
    cursor: Cursor = None,
) -> ReferralPage:
    query = visible_referrals(principal, tenant=runtime.settings.tenant)
    for field, value in (
        ("status", status_),
        ("locality", locality),
        ("setting_id", setting_id),
        ("need_codes", need_code),
    ):
        if value is not None:
            query[field] = str(value)
    page, next_cursor = await newest_first(runtime.db[REFERRALS], query, limit=limit, cursor=cursor)
    return ReferralPage(items=[referral_view(r, principal) for r in page], next_cursor=next_cursor)


async def _visible(runtime: RuntimeDep, principal: Principal, referral_id: str) -> Document:
    referral = await runtime.db[REFERRALS].find_one(
        {"_id": referral_id, **visible_referrals(principal, tenant=runtime.settings.tenant)}
    )
    if referral is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no referral {referral_id!r} that you may see")
    return referral


@router.get(
    "/{referral_id}",
    response_model=ReferralView,
    summary="A referral with its offers and timeline",
    responses=NOT_FOUND,
)
async def read_referral(referral_id: str, runtime: RuntimeDep, principal: ReaderDep) -> ReferralView:
    return referral_view(await _visible(runtime, principal, referral_id), principal)


@router.get(
    "/{referral_id}/child",
    response_model=ChildDetailsView,
    summary="The child's identifying details (audited)",
    description=(
        "For the referring organisation, and for an agency the referral was offered to when the family's "
        "sharing scope includes its sector, until it declines the offer (or the referral is withdrawn "
        "before it takes the offer up), and for no agency once the referral is withdrawn because the "
        "family withdrew the consent the sharing rested on. Every read is recorded in the audit trail "
        "with its purpose. "
        "Erased `SIGNPOST_PERSONAL_DATA_RETENTION_DAYS` after the referral ended (closed, escalated or "
        "unmatched, and unchanged since)."
    ),
    responses={
        **NOT_FOUND,
        403: {
            "description": "The sharing scope does not allow your organisation, its offer was declined, "
            "or the family withdrew its consent"
        },
        410: {"description": "Erased: the referral ended longer ago than the retention period"},
    },
)
async def read_child_details(
    referral_id: str, purpose: Purpose, runtime: RuntimeDep, principal: ChildReaderDep
) -> ChildDetailsView:
    referral = await _visible(runtime, principal, referral_id)
    if refusal := child_details_refusal(principal, referral):
        raise HTTPException(status.HTTP_403_FORBIDDEN, refusal)
    if purpose is Purpose.CORRECTION and principal.role is not Role.PRACTITIONER:
        # The audit trail says why each read was made: checking what was sent is the referrer's.
        raise refused(
            "correction is the referrer checking what it sent; give your own purpose", "query.purpose"
        )
    if erased_at := referral.get("erased_at"):
        raise HTTPException(
            status.HTTP_410_GONE,
            f"the child's details for referral {referral_id!r} were erased on {erased_at:%Y-%m-%d}, "
            "when the referral had been ended for the retention period",
        )
    details = await runtime.db[CHILD_DETAILS].find_one({"_id": referral_id})
    if details is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no child details for referral {referral_id!r}")
    await record_read(runtime=runtime, principal=principal, referral_id=referral_id, purpose=purpose)
    hidden = {"_id", "tenant", *(["address"] if withholds_address(principal, details) else [])}
    return ChildDetailsView.model_validate(
        {k: v for k, v in details.items() if k not in hidden}, context=STORED
    )


@router.post(
    "/{referral_id}/information",
    dependencies=[Depends(rate_limited_write)],
    response_model=ReferralView,
    summary="Add information (a new timeline entry, never an overwrite)",
    responses={**NOT_FOUND, **CONFLICT},
)
async def post_information(
    referral_id: str,
    body: InformationRequest,
    request: Request,
    runtime: RuntimeDep,
    principal: PractitionerDep,
) -> ReferralView:
    decide = partial(added_information, request=body, author=principal.subject)
    return await apply_decision(request, runtime, principal, referral_id, decide)


@router.post(
    "/{referral_id}/withdraw",
    dependencies=[Depends(rate_limited_write)],
    response_model=ReferralView,
    summary="Withdraw a referral, with a reason",
    responses={**NOT_FOUND, **CONFLICT},
)
async def post_withdraw(
    referral_id: str, body: WithdrawRequest, request: Request, runtime: RuntimeDep, principal: PractitionerDep
) -> ReferralView:
    return await apply_decision(request, runtime, principal, referral_id, partial(withdrawal, request=body))
