"""Intake's domain errors as HTTP answers a person can act on."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Request, status
from fastapi.responses import JSONResponse
from signpost.intake.referrals.service import ConcurrentChange, IdempotencyConflict, NotFound, ReferralClosed
from signpost.shared.groupcommit import Overloaded
from signpost.shared.lifecycle import IllegalTransition


async def illegal_transition(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, IllegalTransition)
    return JSONResponse(
        {
            "detail": str(exc),
            "current_status": exc.current.value,
            "allowed_moves": [m.value for m in exc.allowed],
        },
        status_code=status.HTTP_409_CONFLICT,
    )


async def referral_closed(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ReferralClosed)
    return JSONResponse(
        {"detail": str(exc), "current_status": exc.status.value, "allowed_moves": []},
        status_code=status.HTTP_409_CONFLICT,
    )


async def not_found(_: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": f"no referral or offer {exc} that you may see"}, status_code=404)


async def idempotency_conflict(_: Request, __: Exception) -> JSONResponse:
    return JSONResponse(
        {
            "detail": "this Idempotency-Key was used with a different request body; use a new key for a new referral"
        },
        status_code=status.HTTP_409_CONFLICT,
    )


async def concurrent_change(_: Request, __: Exception) -> JSONResponse:
    return JSONResponse(
        {"detail": "the referral changed while this request was handled; read it again and retry"},
        status_code=status.HTTP_409_CONFLICT,
    )


async def overloaded(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Overloaded)
    return JSONResponse(
        {
            "detail": f"intake is at capacity ({exc.waiting} referrals are waiting to be written); "
            "nothing was stored for this request: send it again in a moment"
        },
        status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
        headers={"Retry-After": "1"},
    )


ERROR_HANDLERS: dict[type[Exception], Callable[[Request, Exception], Awaitable[JSONResponse]]] = {
    IllegalTransition: illegal_transition,
    ReferralClosed: referral_closed,
    NotFound: not_found,
    IdempotencyConflict: idempotency_conflict,
    ConcurrentChange: concurrent_change,
    Overloaded: overloaded,
}
