"""DuckDB's errors whose message its Python binding could not decode.

DuckDB quotes the input it refused (a JSON page, a value) in its error, cut at a byte count: a cut in
the middle of a multi-byte character leaves a message that is not UTF-8, and the binding then raises
`UnicodeDecodeError` in its place. A lone surrogate in a page whose first bytes were `xé😀…` crashed
every sync of the object with a traceback, where DuckDB's own error is what the page's mending reads.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

import duckdb

# How DuckDB's messages start: the kind of error, then its text (`Invalid Input Error: Malformed JSON…`).
_KIND = re.compile(rb"([A-Za-z][A-Za-z -]*) Error: ")
# The kinds whose class is not named after them; the others' are (`Invalid Input`: InvalidInputException).
_IRREGULAR = {"transactioncontext": "transaction", "mismatchtype": "typemismatch"}


@contextmanager
def decoded_duckdb_errors() -> Iterator[None]:
    """Within the block, DuckDB's error whose message could not be decoded is raised as the error DuckDB
    meant (its cut character replaced): any other `UnicodeDecodeError` is raised as it is."""
    try:
        yield
    except UnicodeDecodeError as error:
        meant = duckdb_error(error)
        if meant is None:
            raise
        raise meant from None


def duckdb_error(error: UnicodeDecodeError) -> duckdb.Error | None:
    """The error DuckDB meant by `error`, of its class (`duckdb.Error` for a kind the binding does not
    name), or None when `error` is not DuckDB's message."""
    message = error.object
    kind = _KIND.match(message) if isinstance(message, bytes) else None
    if kind is None:
        return None
    name = re.sub(r"[ -]", "", kind.group(1).decode("ascii")).lower()
    wanted = _IRREGULAR.get(name, name) + "exception"
    meant = next(
        (
            cls
            for cls in vars(duckdb).values()
            if isinstance(cls, type) and issubclass(cls, duckdb.Error) and cls.__name__.lower() == wanted
        ),
        duckdb.Error,
    )
    return meant(bytes(message).decode("utf-8", errors="replace"))
