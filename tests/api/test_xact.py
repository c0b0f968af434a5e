"""`_xact_id` values: a uint64, as its ASCII decimal digits or an int."""

from __future__ import annotations

import pytest

from connector.api.xact import MAX_XACT, parse_xact


@pytest.mark.parametrize(("value", "number"), [("0", 0), ("0012", 12), (str(MAX_XACT), MAX_XACT), (7, 7)])
def test_a_version_is_read_as_its_number(value: str | int, number: int) -> None:
    assert parse_xact(value) == number


# Other scripts' digits (Arabic-Indic, full-width), which `int` reads as numbers; a superscript, which
# `str.isdigit` takes; beyond 64 bits.
@pytest.mark.parametrize(
    "value", ["١٢", "\uff11\uff12", "²", "", "-1", "1.0", str(MAX_XACT + 1), -1, MAX_XACT + 1]
)
def test_what_is_no_version_is_refused(value: str | int) -> None:
    with pytest.raises(ValueError, match="_xact_id must be"):
        parse_xact(value)
