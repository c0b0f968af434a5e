"""Retry-After parsing."""

from __future__ import annotations

import email.utils

from connector.api.retry import MAX_RETRY_AFTER_S, parse_retry_after


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
