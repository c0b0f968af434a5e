"""How many rows a data file of an object holds.

Small objects get small files, so an incremental sync, which rewrites the
files its rows touch, rewrites little of them; huge objects get files of a
bounded size. Staging cuts its parts to this size, so an object's first load
can keep them as its files.
"""

from __future__ import annotations

MIN_FILE_ROWS = 256
MAX_FILE_ROWS = 250_000
FILES_PER_OBJECT = 64


def file_target_rows(object_rows: int) -> int:
    """How many rows a data file of an object of `object_rows` rows should hold."""
    return min(MAX_FILE_ROWS, max(MIN_FILE_ROWS, object_rows // FILES_PER_OBJECT))
