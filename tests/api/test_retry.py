"""Retry-After parsing, and the backoff between retries."""

from __future__ import annotations

import email.utils

import httpx
from tenacity import Retrying, retry_if_exception_type

from connector.api.retry import (
    MAX_RETRY_AFTER_S,
    MalformedBody,
    RetryableResponse,
    backoff_honouring_retry_after,
    parse_retry_after,
)


def test_seconds() -> None:
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(" 1.5 ") == 1.5


def test_http_date_is_relative_to_now() -> None:
    now = 1_800_000_000.0
    header = email.utils.formatdate(now + 7, usegmt=True)
    assert parse_retry_after(header, now=now) == 7.0


def test_past_dates_mean_no_wait_and_huge_waits_are_capped() -> None:
    now = 1_800_000_000.0
    assert parse_retry_after(email.utils.formatdate(now - 60, usegmt=True), now=now) == 0.0
    assert parse_retry_after("86400") == MAX_RETRY_AFTER_S


def test_absent_or_garbage_is_none() -> None:
    assert parse_retry_after(None) is None
    assert parse_retry_after("") is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("nan") is None
    assert parse_retry_after("-NaN") is None


def waits(errors: list[BaseException], initial_s: float, max_s: float) -> list[float]:
    """The waits a tenacity retry loop with our backoff takes before each retry of `errors`, in order."""
    slept: list[float] = []
    failures = iter(errors)

    def call() -> None:
        error = next(failures, None)
        if error is not None:
            raise error

    backoff = backoff_honouring_retry_after(initial_s, max_s)
    Retrying(wait=backoff, sleep=slept.append, retry=retry_if_exception_type(Exception))(call)
    return slept


def test_a_retry_after_is_waited_exactly() -> None:
    assert waits([RetryableResponse(429, 3.0), RetryableResponse(503, 0.0)], 0.5, 30.0) == [3.0, 0.0]


def test_otherwise_the_wait_is_jittered_in_a_window_doubling_up_to_the_most() -> None:
    errors: list[BaseException] = [RetryableResponse(503, None), httpx.ReadTimeout("slow"), MalformedBody()]
    samples = [waits([*errors, *errors], 0.5, 3.0) for _ in range(300)]
    windows = [0.5, 1.0, 2.0, 3.0, 3.0, 3.0]
    for attempt, window in enumerate(windows):
        drawn = [sample[attempt] for sample in samples]
        assert all(0 <= wait <= window for wait in drawn)
        # Jittered across the whole window: not a fixed wait, not a narrower window.
        assert min(drawn) < window / 4 and max(drawn) > window * 3 / 4
