"""Mend a page whose text holds a lone UTF-16 surrogate escape, which DuckDB refuses to read.

JSON's grammar allows `"\ud83d"` alone (RFC 8259 warns readers may differ), and writers make it
when they cut a string in the middle of an emoji. DuckDB's JSON reader refuses the whole page,
so one such value would stop its object from syncing, run after run. Each lone surrogate's escape
becomes that of U+FFFD, the replacement character, as a UTF-8 decoder makes of any broken sequence:
the row syncs, one character changed. The text is mended in place, not parsed and written again,
so every other value keeps its text (a number's digits, a value nested to any depth).

An id is the exception: as U+FFFD, ids that differ only in a lone surrogate (`x\ud83d`, `x\ud83e`)
would be one row, and all but one lost. An id keeps each lone surrogate as its escape's text instead
(`\ud83d`, six characters), and the text of an id that reads as such an escape has its backslashes
doubled (`\\ud83d`), so that no two ids become one: a run of backslashes before `ud83d` in a stored id
is odd where the id held a lone half, even where it held the text.
"""

from __future__ import annotations

import json
import re

from connector.sync.deep_json import with_room_for_depth

# Taken left to right: an escaped backslash (so that `\\ud83d`, a backslash and then text, is not read
# as an escape), a whole pair, or a lone half. Outside strings JSON holds no backslash.
_ESCAPES = re.compile(
    rb"\\\\|\\u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}|\\u[dD][89a-fA-F][0-9a-fA-F]{2}"
)
_LONE_HALF_BYTES = len(rb"\ud83d")
_REPLACEMENT = rb"\ufffd"


def without_lone_surrogates(body: bytes | bytearray) -> bytes | None:
    """The page with each lone surrogate's escape as U+FFFD's; None if it holds none."""
    mended = False

    def mend(escape: re.Match[bytes]) -> bytes:
        nonlocal mended
        if len(escape[0]) != _LONE_HALF_BYTES:
            return escape[0]
        mended = True
        return _REPLACEMENT

    text = _ESCAPES.sub(mend, body)
    return text if mended else None


_LONE_HALF = re.compile("[\ud800-\udfff]")
# A lone half with the backslashes before it, or the text of one's escape as an id keeps it, with the
# backslashes before it (which `ids_with_lone_surrogates` and `ESCAPE_TEXT_SQL` double).
_HALF_OR_ITS_TEXT = re.compile(r"(\\*)(?:([\ud800-\udfff])|(ud[89a-f][0-9a-f]{2}))")
# The text of a lone half's escape after its backslashes, in an id: doubled as DuckDB reads a page
# (RE2, as SQL literals), halved back as the warehouse's ids are sent (`id_as_sent`).
_ESCAPE_TEXT = r"(\\+)(ud[89a-f][0-9a-f]{2})"
ESCAPE_TEXT_SQL = f"'{_ESCAPE_TEXT}'"
ESCAPE_TEXT_DOUBLED_SQL = r"'\1\1\2'"
_STORED_ESCAPE_TEXT = re.compile(_ESCAPE_TEXT)


def id_as_sent(stored: str) -> str:
    """An id as the API has it, from the warehouse's text of it: the backslashes before the text of a
    lone half's escape halved back, where they were doubled (a run of even length). A lone half's own
    escape (an odd run) stays as its six characters: no JSON writer here writes a lone surrogate."""
    if "\\u" not in stored:
        return stored
    return _STORED_ESCAPE_TEXT.sub(
        lambda match: match[0] if len(match[1]) % 2 else match[1][: len(match[1]) // 2] + match[2], stored
    )


def _stored_id(match: re.Match[str]) -> str:
    backslashes, half, text = match.groups()
    return backslashes * 2 + (f"\\u{ord(half):04x}" if half else text)


def ids_with_lone_surrogates(body: bytes | bytearray) -> dict[int, str]:
    """Each event's id that holds a lone surrogate, by its place in the page (from 1), each lone half
    written as its escape's six characters (`x\\ud83d`) and the backslashes before one or before such
    text doubled; empty if the page is not events Python reads."""
    try:
        # Python's reader, unlike DuckDB's, takes a lone surrogate: a page mended of one only is read here.
        page = with_room_for_depth(lambda: json.loads(body))
    except ValueError:
        return {}
    events = page.get("events") if isinstance(page, dict) else None
    if not isinstance(events, list):
        return {}
    return {
        place: _HALF_OR_ITS_TEXT.sub(_stored_id, event["id"])
        for place, event in enumerate(events, start=1)
        if isinstance(event, dict) and isinstance(event.get("id"), str) and _LONE_HALF.search(event["id"])
    }
