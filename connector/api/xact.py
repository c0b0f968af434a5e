"""Braintrust transaction ids (`_xact_id`).

The API sends `_xact_id` as a decimal string of a uint64. Strings of different
lengths do not sort like the numbers they spell, so every comparison in
bt-sync goes through :func:`parse_xact`.

Observed layout (inferred from real values, not documented by Braintrust):
``0x0DE1 << 48 | unix_seconds << 16 | counter``, which makes ids 19 digits long
and lets a time window be expressed as an xact distance.
"""

from __future__ import annotations

import math

XACT_TOP_BITS = 0x0DE1 << 48
# `_xact_id` is a uint64.
MAX_XACT = 2**64 - 1
_SECONDS_SHIFT = 16
_MAX_COUNTER = 0xFFFF


def parse_xact(value: str | int) -> int:
    """Return the numeric value of an `_xact_id` given as a decimal string or int.

    Raises:
        ValueError: if the value is not a uint64, or the text not its ASCII digits (`str.isdigit` takes
            other scripts' digits, `'١٢'`, which `int` reads as 12).
    """
    if isinstance(value, int):
        number = value
    else:
        if not (value.isascii() and value.isdigit()):
            raise ValueError(f"_xact_id must be a decimal string, got {value!r}")
        number = int(value)
    if not 0 <= number <= MAX_XACT:
        raise ValueError(f"_xact_id must be a 64-bit unsigned integer, got {number}")
    return number


def format_xact(value: int) -> str:
    """Return the wire form (decimal string) of an `_xact_id`."""
    return str(value)


def xact_for_time(unix_seconds: float, counter: int = 0) -> int:
    """Return the `_xact_id` Braintrust would mint at `unix_seconds` with `counter`."""
    return XACT_TOP_BITS | (int(unix_seconds) << _SECONDS_SHIFT) | (counter & _MAX_COUNTER)


# How far past the newest row and this machine's clock a read is pinned. A deletion is a write of its
# own with no row to show for it: a pin below it shows the deleted row, and a reconcile keeps it. A
# client clock behind the server's (or ids minted ahead of the time) put pins below deletions made
# just before the sync began. Writes the pin lets through that the read does not meet are above its
# watermark, so the next sync reads them.
PIN_AHEAD_S = 60


def snapshot_pin(newest_row_xact: int, now: float) -> int:
    """The `version` to pin a read at, given the newest row's `_xact_id` and the clock: past both by
    `PIN_AHEAD_S`, so it includes every write (deletions too) made before the sync started."""
    ahead = max(newest_row_xact, xact_for_time(now, _MAX_COUNTER)) + xact_span_for_seconds(PIN_AHEAD_S)
    # Ids minted near the top of their 64 bits: a pin past it is no version the API can read at.
    return min(ahead, MAX_XACT)


# How far ahead of the clock the API's ids are minted by the clock a read's start is told by (the
# earlier of the API's `Date` and this machine's) may run, at most.
CLOCKS_APART_S = 60


def settled_below(read_began: float, overlap_s: float) -> int:
    """The `_xact_id` at or below which every write was visible to a read begun at `read_began` (the
    earlier of the API's `Date` and this machine's clock: `run._read_at`), given that a write shows within
    `overlap_s` of its `_xact_id`'s time (the overlap window's premise)."""
    return xact_for_time(max(0.0, read_began - overlap_s - CLOCKS_APART_S))


def xact_span_for_seconds(seconds: float) -> int:
    """Return how far apart two `_xact_id`s minted `seconds` apart are, at least: an id counts whole
    seconds, so a fraction of one is a whole one (an overlap of 0.9 s was none)."""
    return math.ceil(seconds) << _SECONDS_SHIFT
