"""Exceptions told without the data they carry: a MongoDB error's text ends with the server's whole
reply, which for a failed write holds the documents written, and pydantic's names the input it
refused; either may be a child's details. Dead-letter reasons, retry headers and log lines use these."""

from __future__ import annotations

import traceback

from pydantic import ValidationError
from pymongo.errors import OperationFailure

# Enough to recognise a bug; error texts name fields and ids, never a child's details, but they are
# cut short so a huge repr never rides on every message.
MAX_ERROR_CHARS = 500
# What pymongo puts between an OperationFailure's message and the server's whole reply.
_FULL_ERROR = ", full error: "
_CAUSE = "\nThe above exception was the direct cause of the following exception:\n\n"
_CONTEXT = "\nDuring handling of the above exception, another exception occurred:\n\n"


def describe_error(exc: BaseException) -> str:
    """`Class: message`, one line, bounded."""
    message = " ".join(error_message(exc).split())
    text = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    return text[:MAX_ERROR_CHARS]


def error_message(exc: BaseException) -> str:
    """The exception's text less any document or input it holds: a MongoDB error keeps its
    message and its write errors' codes and messages; a pydantic error where and what, not the value."""
    if isinstance(exc, ValidationError):
        problems = exc.errors(include_url=False, include_context=False, include_input=False)
        where = "; ".join(f"{'.'.join(map(str, p['loc'])) or '(root)'}: {p['msg']}" for p in problems)
        return f"{exc.error_count()} validation error(s) for {exc.title}: {where}"
    if not isinstance(exc, OperationFailure):
        return str(exc)
    message = str(exc).partition(_FULL_ERROR)[0]
    details = exc.details or {}
    errors = [*details.get("writeErrors", []), *details.get("writeConcernErrors", [])]
    return "; ".join([message, *(f"{error.get('code')} {error.get('errmsg', '')}" for error in errors)])


def redacted_traceback(exc: BaseException) -> str:
    """A traceback as Python prints one (its causes and contexts first), but each exception told
    by `error_message`: the frames say where, and nothing the exception carried is printed."""
    parts: list[str] = []
    current: BaseException | None = exc
    seen: set[int] = set()
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        parts.append(_one_traceback(current))
        if current.__cause__ is not None:
            parts.append(_CAUSE)
            current = current.__cause__
        elif current.__context__ is not None and not current.__suppress_context__:
            parts.append(_CONTEXT)
            current = current.__context__
        else:
            current = None
    return "".join(reversed(parts)).rstrip("\n")


def _one_traceback(exc: BaseException) -> str:
    name = type(exc).__qualname__
    module = type(exc).__module__
    qualified = name if module in ("builtins", "__main__") else f"{module}.{name}"
    message = error_message(exc)
    lines = ["Traceback (most recent call last):\n", *traceback.format_tb(exc.__traceback__)]
    lines.append(f"{qualified}: {message}\n" if message else f"{qualified}\n")
    if isinstance(exc, BaseExceptionGroup):
        for number, inner in enumerate(exc.exceptions, start=1):
            nested = redacted_traceback(inner).replace("\n", "\n  | ")
            lines.append(f"  +-- {number} ---\n  | {nested}\n")
    return "".join(lines)
