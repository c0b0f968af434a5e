"""Minting `_xact_id`s: one per write request, strictly increasing."""

from __future__ import annotations

import threading
import time

from connector.api.xact import xact_for_time


class XactClock:
    """Hands out strictly increasing transaction ids.

    By default ids follow Braintrust's layout (time in the high bits, a counter in
    the low 16), bumped by one whenever the clock has not moved on. With `start`
    set, ids are `start, start + 1, ...` so tests can pick values that cross a
    digit boundary (999_999_999 -> 1_000_000_000) and catch string comparisons.

    Args:
        start: the first id to hand out, or None for time-based ids.
    """

    def __init__(self, start: int | None = None) -> None:
        self._start = start
        self._last = -1 if start is None else start - 1
        self._lock = threading.Lock()

    def next(self) -> int:
        with self._lock:
            candidate = self._last + 1
            if self._start is None:
                candidate = max(candidate, xact_for_time(time.time()))
            self._last = candidate
            return candidate

    def observe(self, xact: int) -> None:
        """Make later ids larger than `xact` (used when replaying a journal)."""
        with self._lock:
            self._last = max(self._last, xact)
