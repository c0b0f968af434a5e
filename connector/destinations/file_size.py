"""How many rows a data file of an object holds.

Small objects get small files, so an incremental sync, which rewrites the
files its rows touch, rewrites little of them; huge objects get files of a
bounded size. Staging cuts its parts to this size, so an object's first load
can keep them as its files.
"""

from __future__ import annotations

# DuckDB cuts a Parquet row group, and so a staged part (one row group each), at a multiple of
# its 2,048-row vector: every size is one.
ROWS_ALIGNMENT = 2048
MIN_FILE_ROWS = ROWS_ALIGNMENT
MAX_FILE_ROWS = 122 * ROWS_ALIGNMENT  # about 250,000
FILES_PER_OBJECT = 64


def file_target_rows(object_rows: int) -> int:
    """How many rows a data file of an object of `object_rows` rows should hold."""
    rows = min(MAX_FILE_ROWS, max(MIN_FILE_ROWS, object_rows // FILES_PER_OBJECT))
    return -(-rows // ROWS_ALIGNMENT) * ROWS_ALIGNMENT
