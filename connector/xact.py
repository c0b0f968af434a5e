"""Braintrust transaction ids (`_xact_id`).

The API sends `_xact_id` as a decimal string of a uint64. Strings of different
lengths do not sort like the numbers they spell, so every comparison in
bt-sync goes through :func:`parse_xact`.

Observed layout (inferred from real values, not documented by Braintrust):
``0x0DE1 << 48 | unix_seconds << 16 | counter``, which makes ids 19 digits long
and lets a time window be expressed as an xact distance.
"""

from __future__ import annotations

XACT_TOP_BITS = 0x0DE1 << 48
_SECONDS_SHIFT = 16


def parse_xact(value: str | int) -> int:
    """Return the numeric value of an `_xact_id` given as a decimal string or int.

    Raises:
        ValueError: if the value is not a non-negative decimal integer.
    """
    if isinstance(value, int):
        number = value
    else:
        if not value.isdigit():
            raise ValueError(f"_xact_id must be a decimal string, got {value!r}")
        number = int(value)
    if number < 0:
        raise ValueError(f"_xact_id must be non-negative, got {number}")
    return number


def format_xact(value: int) -> str:
    """Return the wire form (decimal string) of an `_xact_id`."""
    return str(value)


def xact_for_time(unix_seconds: float, counter: int = 0) -> int:
    """Return the `_xact_id` Braintrust would mint at `unix_seconds` with `counter`."""
    return XACT_TOP_BITS | (int(unix_seconds) << _SECONDS_SHIFT) | (counter & 0xFFFF)


def xact_span_for_seconds(seconds: float) -> int:
    """Return how far apart two `_xact_id`s minted `seconds` apart are."""
    return int(seconds) << _SECONDS_SHIFT
