"""When and how long to wait before retrying an API call.

Retries are driven by tenacity; this module only decides *what* is retryable
and honours the server's `Retry-After`, which the spec attaches to 429s.
"""

from __future__ import annotations

import email.utils
import math
import time
from collections.abc import Callable

import httpx
from tenacity import RetryCallState, wait_random_exponential

RETRYABLE_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
# A server asking for more than this is treated as this: a sync should slow down, not stall for an hour.
MAX_RETRY_AFTER_S = 120.0


class RetryableResponse(Exception):
    """An HTTP response whose status says "try again"; carries the wait the server asked for."""

    def __init__(self, status: int, retry_after_s: float | None) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status
        self.retry_after_s = retry_after_s


class MalformedBody(Exception):
    """The response body was cut short or is not the JSON the endpoint promises."""


TRANSIENT_EXCEPTIONS: tuple[type[BaseException], ...] = (
    RetryableResponse,
    MalformedBody,
    httpx.TransportError,  # connect/read/write errors, timeouts, dropped connections
)


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Return the seconds a `Retry-After` header asks to wait, or None if absent or unreadable.

    Args:
        value: the header, either delta-seconds ("3", "1.5") or an HTTP-date.
        now: the current Unix time, for tests.
    """
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
        if math.isnan(seconds):  # `float` reads "nan", which no wait is
            return None
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_S)


def backoff_honouring_retry_after(initial_s: float, max_s: float) -> Callable[[RetryCallState], float]:
    """A tenacity wait: the server's `Retry-After` when given, else jittered exponential backoff."""
    jittered = wait_random_exponential(multiplier=initial_s, max=max_s)

    def wait(state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, RetryableResponse) and error.retry_after_s is not None:
            return error.retry_after_s
        return float(jittered(state))

    return wait
