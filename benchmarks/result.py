"""The record of one measured case: a line of `results.jsonl`."""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from pathlib import Path


@dataclass
class Result:
    """One line of `results.jsonl`.

    `work_rows` is what `rows_per_s` counts: the table's live rows for a full
    sync, the changed rows for an incremental one, the file's rows for a push.
    `repeat` numbers the runs of a case that runs more than once.
    Wall, CPU and peak RSS are the whole process's, measured from outside.
    `bytes_written` and `table_bytes`: what a bt-sync sync wrote, and its table's bytes after it.
    `server_rows` is what the emulator served (fetch) or received (push).
    `load_before` is the 1-minute load average just before the case (others' work on the machine).
    """

    run: str
    size: int
    object: str
    case: str
    tool: str
    status: str
    work_rows: int
    expected_rows: int | None = None
    repeat: int = 0
    wall_s: float | None = None
    cpu_s: float | None = None
    rows_per_s: float | None = None
    rss_peak_mb: float | None = None
    rows_stored: int | None = None
    rows_fetched: int | None = None
    bytes_written: int | None = None
    table_bytes: int | None = None
    server_rows: int | None = None
    server_requests: int | None = None
    load_before: float | None = None
    detail: str | None = None
    reason: str | None = None


def load_results(path: Path) -> list[Result]:
    """Read `results.jsonl` back (e.g. to render RESULTS.md again)."""
    names = {field.name for field in fields(Result)}
    return [
        Result(**{key: value for key, value in json.loads(line).items() if key in names})
        for line in path.read_text().splitlines()
        if line.strip()
    ]
