"""`signpost demo`'s own checks, before it talks to any platform."""

from __future__ import annotations

import json

import pytest

from signpost.platform.cli import main
from signpost.platform.demo.area import build_area


def test_feed_only_writes_the_areas_oruk_feed(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--feed", "-", "--seed", "3"]) == 0
    feed = json.loads(capsys.readouterr().out)
    assert [s["name"] for s in feed["contents"]] == [p.name for p in build_area(3).provisions]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--referrals", "0"], "must be at least 1"),
        (["--referrals", "many"], "must be a whole number, not 'many'"),
        (["--rate", "0"], "must be above 0"),
        (["--term", "winter"], "invalid choice: 'winter'"),
    ],
)
def test_bad_flags_say_what_is_wrong_and_exit_2(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit:
        main(["demo", *args])
    assert exit.value.code == 2
    assert message in capsys.readouterr().err
