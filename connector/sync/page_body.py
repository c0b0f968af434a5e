"""What a fetch page's body shows at its ends, read without parsing it: its cursor, and where its events are.

The API serves `{"events": [...], "cursor": "..."}`. Both readings are guesses
that a parse confirms. The extraction asks for the next page with a cursor read
off the tail, and checks it against the page as staged. Staging types the bytes
between the ends as the page's events, once DuckDB has parsed the whole body,
and DuckDB's reader refuses them unless they are exactly one array: the body
is then that array and the cursor, nothing else.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

_CURSOR_VALUE = rb'(null|"(?:[^"\\]|\\.)*")'
# A cursor that is the body's last member is the top-level one, since only the top-level object can close
# the body.
_TRAILING_CURSOR = re.compile(rb'[{,]\s*"cursor"\s*:\s*' + _CURSOR_VALUE + rb"\s*}\s*\Z")
_LEADING_CURSOR = re.compile(rb'\A\s*{\s*"cursor"\s*:\s*' + _CURSOR_VALUE + rb'\s*,\s*"events"\s*:\s*')
_LEADING_EVENTS = re.compile(rb'\A\s*{\s*"events"\s*:\s*')
_CLOSING_BRACE = re.compile(rb"}\s*\Z")
# How far from the end a cursor is looked for: cursors are short, pages megabytes.
_TAIL_BYTES = 8192


@dataclass(frozen=True)
class EventsSpan:
    """Where a page's events array lies in its body, and the cursor beside it.

    Args:
        start: the offset of the array's first byte.
        end: the offset just past its last byte (and any blanks after it).
        cursor: the page's cursor, None when null or absent.
    """

    start: int
    end: int
    cursor: str | None


def trailing_cursor(body: bytes) -> str | None:
    """The cursor, when the body ends with it (a cheap look at the tail); None otherwise or when null."""
    match = _TRAILING_CURSOR.search(body[-_TAIL_BYTES:])
    return None if match is None else _cursor(match.group(1))


def events_span(body: bytes) -> EventsSpan | None:
    """Where the events array would be in `body`, laid out as the API lays out a page; None otherwise."""
    tail_offset = max(len(body) - _TAIL_BYTES, 0)
    tail = body[tail_offset:]
    leading_cursor = _LEADING_CURSOR.match(body)
    if leading_cursor is not None:
        closing = _CLOSING_BRACE.search(tail)
        if closing is None:
            return None
        cursor = _cursor(leading_cursor.group(1))
        return EventsSpan(leading_cursor.end(), tail_offset + closing.start(), cursor)
    leading_events = _LEADING_EVENTS.match(body)
    if leading_events is None:
        return None
    trailing = _TRAILING_CURSOR.search(tail)
    if trailing is not None and tail[trailing.start() : trailing.start() + 1] == b",":
        return EventsSpan(leading_events.end(), tail_offset + trailing.start(), _cursor(trailing.group(1)))
    closing = _CLOSING_BRACE.search(tail)
    if trailing is not None or closing is None:
        return None
    return EventsSpan(leading_events.end(), tail_offset + closing.start(), None)


def _cursor(token: bytes) -> str | None:
    """The cursor a JSON token (`null` or a string) holds; None for a string that is not JSON, which a
    parse of the whole body refuses."""
    try:
        cursor = json.loads(token)
    except ValueError:
        return None
    return cursor if isinstance(cursor, str) else None
