"""Exceptions told without the documents and input they carry."""

from __future__ import annotations

from pydantic import BaseModel, ValidationError
from pymongo.errors import BulkWriteError, OperationFailure
from signpost.shared.errors import describe_error, redacted_traceback

REFERRAL = {"_id": "r-1", "child": {"given_name": "Zephyrine", "nhs_number": "9434765919"}}
REFUSED = {
    "given_name": 9434765919,
    "age_years": "Zephyrine",
}  # a traceback prints source lines: no literals below


class Child(BaseModel):
    given_name: str
    age_years: int


def failed_write() -> BulkWriteError:
    return BulkWriteError(
        {
            "writeErrors": [{"index": 0, "code": 11000, "errmsg": "E11000 dup key: r-1", "op": REFERRAL}],
            "writeConcernErrors": [{"code": 64, "errmsg": "waiting for replication timed out"}],
            "nInserted": 0,
        }
    )


def refused_input() -> ValidationError:
    try:
        Child.model_validate(REFUSED)
    except ValidationError as exc:
        return exc
    raise AssertionError("pydantic accepted it")


def test_errors_are_described_on_one_bounded_line() -> None:
    assert describe_error(ValueError("no offer\nfor p-1")) == "ValueError: no offer for p-1"
    assert describe_error(KeyError()) == "KeyError"
    assert len(describe_error(RuntimeError("x" * 10_000))) == 500


def test_a_failed_write_is_described_by_its_codes_and_messages_not_its_documents() -> None:
    assert describe_error(failed_write()) == (
        "BulkWriteError: batch op errors occurred; 11000 E11000 dup key: r-1; "
        "64 waiting for replication timed out"
    )
    failure = OperationFailure("Document failed validation", code=121, details={"errInfo": REFERRAL})
    assert describe_error(failure) == "OperationFailure: Document failed validation"


def test_refused_input_is_described_by_where_and_what_not_the_value() -> None:
    assert "Zephyrine" in str(refused_input())  # what pydantic itself would print
    assert describe_error(refused_input()) == (
        "ValidationError: 2 validation error(s) for Child: given_name: Input should be a valid string; "
        "age_years: Input should be a valid integer, unable to parse string as an integer"
    )


def test_a_traceback_keeps_its_frames_and_chain_but_not_the_data() -> None:
    def store() -> None:
        raise failed_write()

    def handle() -> None:
        try:
            store()
        except BulkWriteError as exc:
            raise RuntimeError("could not store the referral") from exc

    try:
        try:
            handle()
        finally:
            raise refused_input()  # while the first is being handled: shown as its context
    except ValidationError as exc:
        text = redacted_traceback(exc)
    assert "Zephyrine" not in text and "9434765919" not in text
    order = [
        "in store",
        "pymongo.errors.BulkWriteError: batch op errors occurred; 11000 E11000 dup key: r-1",
        "The above exception was the direct cause of the following exception:",
        "RuntimeError: could not store the referral",
        "During handling of the above exception, another exception occurred:",
        "pydantic_core._pydantic_core.ValidationError: 2 validation error(s) for Child",
    ]
    positions = [text.index(part) for part in order]
    assert positions == sorted(positions)


def test_a_group_shows_each_of_its_exceptions() -> None:
    group = ExceptionGroup("task group", [failed_write(), ValueError("bad offer")])
    text = redacted_traceback(group)
    assert "ExceptionGroup: task group (2 sub-exceptions)" in text
    assert "+-- 1 ---" in text and "BulkWriteError" in text and "+-- 2 ---" in text and "bad offer" in text
    assert "Zephyrine" not in text
