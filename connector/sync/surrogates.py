"""Mend a page whose text holds a lone UTF-16 surrogate escape, which DuckDB refuses to read.

JSON's grammar allows `"\ud83d"` alone (RFC 8259 warns readers may differ), and writers make it
when they cut a string in the middle of an emoji. DuckDB's JSON reader refuses the whole page,
so one such value would stop its object from syncing, run after run. The page is read again by
Python's reader, which takes the escape, and each lone surrogate becomes U+FFFD, the replacement
character, as a UTF-8 decoder makes of any broken sequence: the row syncs, one character changed.
"""

from __future__ import annotations

import json
import re

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def without_lone_surrogates(body: bytes) -> bytes | None:
    """The page with each lone surrogate as U+FFFD; None if it holds none (or is not JSON at all)."""
    try:
        page = json.loads(body)
    except ValueError:
        return None
    # Written back as text, a surrogate left is a lone one: the reader joined every pair into one character.
    text = json.dumps(page, ensure_ascii=False)
    mended = _LONE_SURROGATE.sub("\ufffd", text)
    return mended.encode() if mended != text else None
