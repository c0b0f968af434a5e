"""Numbered copies of the catalog tables' files, never changed once written, for the DuckDB views.

A catalog table's file (`<table>/data.parquet`) is replaced whole at each sync. Each write also leaves
a numbered copy in the table's directory of versions, and the analysts' views read the newest copy:
DuckDB opens a file twice in a query, and DuckDB 1.4 failed a query now and then (`TProtocolException:
Invalid data`) on a file replaced between the two. A copy replaced by a newer one for longer than the
grace is deleted, as the event tables' replaced versions are.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from itertools import pairwise

from connector.destinations.filesystem import Root

# The copies of a table, by the glob the views read them with.
VERSION_GLOB = "data-*.parquet"
_VERSION = re.compile(r"data-([0-9]{12})\.parquet")


def version_names(root: Root, directory: str) -> list[str]:
    """The copies in `directory` of the tree, oldest first."""
    return [name for name in root.list(directory) if _VERSION.fullmatch(name)]


def add_version(root: Root, directory: str, data: bytes, grace: timedelta) -> None:
    """Write `data` as the newest copy in `directory`, then delete the copies replaced longer than `grace`
    ago (by a copy written before then). The caller holds the table's catalog lock."""
    names = version_names(root, directory)
    number = int(names[-1][len("data-") : -len(".parquet")]) + 1 if names else 0
    newest = f"data-{number:012d}.parquet"
    root.write(f"{directory}/{newest}", data)
    oldest_kept = datetime.now(UTC) - grace
    for older, newer in pairwise([*names, newest]):
        if root.modified(f"{directory}/{newer}") < oldest_kept:
            root.delete(f"{directory}/{older}")
