"""A page's cursor and the place of its events, read off the ends of its body."""

from __future__ import annotations

import json

import pytest

from connector.sync.page_body import EventsSpan, events_span, trailing_cursor


@pytest.mark.parametrize(
    ("body", "cursor"),
    [
        (b'{"events": [], "cursor": "c-1"}', "c-1"),
        (b'{"events": [{"id": "' + b"x" * 9_000 + b'"}], "cursor": "c\\"2"}\n', 'c"2'),
        (b'{"events": [], "cursor": null}', None),
        (b'{"cursor": "c-3", "events": []}', None),  # not at the end: DuckDB's parse will say
        (b'{"events": [{"cursor": "inner"}]}', None),
        (b'{"events": [], "cursor": "c\\x"}', None),  # not JSON: DuckDB's parse will say
        (b'{"events": [], "cursor": "c\t4"}', None),
    ],
)
def test_a_cursor_that_ends_the_body_is_read_off_its_tail(body: bytes, cursor: str | None) -> None:
    assert trailing_cursor(body) == cursor


EVENTS = [{"id": "a", "input": {"cursor": "inner", "events": [1]}}, {"id": 'b\\"]}'}]


@pytest.mark.parametrize(
    ("layout", "cursor"),
    [
        ('{"events": E, "cursor": C}', "c-1"),
        ('{"events": E, "cursor": C}', None),
        ('{"cursor": C, "events": E}', 'c"2'),
        ('{"cursor": C, "events": E}', None),
        ('{"events": E}', None),
        ('\n {\n  "events" :  E ,\r\n  "cursor"\t:C\n}\n\n', "c-3"),
    ],
)
def test_the_events_array_is_found_in_either_order_of_the_keys(layout: str, cursor: str | None) -> None:
    array = json.dumps(EVENTS)
    body = layout.replace("E", array).replace("C", json.dumps(cursor)).encode()
    span = events_span(body)
    assert span is not None
    assert body[span.start : span.end].strip() == array.encode()
    assert span.cursor == cursor


def test_the_span_of_a_page_is_read_off_its_ends_only() -> None:
    # What lies between the ends is left to DuckDB's reader, which types it only if it is one array.
    body = b'{"events": [{"id": "a"}], "more": 1, "cursor": "c"}'
    assert events_span(body) == EventsSpan(body.index(b"["), body.index(b', "cursor"'), cursor="c")


@pytest.mark.parametrize(
    "body",
    [
        b'{"more": 1, "events": [], "cursor": "c"}',
        b'{"cursor": "c", "events": []',
        b'{"events": []',
        b'["events"]',
        b"",
    ],
)
def test_a_body_laid_out_otherwise_has_no_span(body: bytes) -> None:
    assert events_span(body) is None
