"""Work outside the measured cases: the file to push, and the change upstream before an incremental sync."""

from __future__ import annotations

import random
from pathlib import Path

import duckdb
import orjson

from connector.api.client import BraintrustClient
from connector.config import ApiSettings
from connector.emulator.generate import TraceFactory, log_batches
from schemas.api import ObjectType

CHANGE_BATCH_ROWS = 1000
_TOPICS = ("billing", "shipping", "accounts", "returns", "search", "onboarding")


def write_push_file(path: Path, rows: int) -> Path:
    """Write a JSON Lines dataset file: `id`, `input`, `expected`, `metadata` and `tags` per row (~1 kB)."""
    factory = TraceFactory(random.Random(7), payload_bytes=1200)
    with path.open("wb") as out:
        for number in range(rows):
            record = {
                "id": f"case-{number:08d}",
                "input": {"question": factory.text(280), "context": factory.text(160)},
                "expected": {"answer": factory.text(320)},
                "metadata": {
                    "topic": _TOPICS[number % len(_TOPICS)],
                    "difficulty": factory.number(1, 5),
                    "source": "benchmark",
                },
                "tags": ["golden"] if number % 10 == 0 else [],
            }
            out.write(orjson.dumps(record) + b"\n")
    return path


def recent_change(
    api_url: str, api_key: str, project_id: str, duckdb_file: Path, table: str, fraction: float
) -> int:
    """The usual hourly change: `fraction` of the table's rows as new traces, plus feedback merged
    into half as many rows among the newest 3%. Returns the number of rows new or changed.

    The row ids come from the synced DuckDB file.
    """
    with duckdb.connect(str(duckdb_file), read_only=True) as connection:
        (total,) = connection.execute(f'SELECT count(*) FROM "{table}"').fetchone() or (0,)
        new_rows, updated_rows = max(1, round(total * fraction)), max(1, round(total * fraction / 2))
        recent = [
            row[0]
            for row in connection.execute(
                f'SELECT id FROM "{table}" ORDER BY created DESC LIMIT ?',
                [max(updated_rows, total * 3 // 100)],
            ).fetchall()
        ]
    updates = [
        {"id": row_id, "_is_merge": True, "scores": {"user_feedback": 1.0}}
        for row_id in random.Random(5).sample(recent, updated_rows)
    ]
    factory = TraceFactory(random.Random(11), payload_bytes=1200)
    new = [
        row
        for batch in log_batches(factory, new_rows, trace_spans=(1, 20), update_fraction=0.0)
        for row in batch
    ]
    settings = ApiSettings(api_url=api_url, api_key=api_key)
    with BraintrustClient(settings) as client:
        events = [*new, *updates]
        for start in range(0, len(events), CHANGE_BATCH_ROWS):
            body = orjson.dumps({"events": events[start : start + CHANGE_BATCH_ROWS]})
            client.insert_events(ObjectType.PROJECT_LOGS, project_id, body)
    return int(new_rows + updated_rows)
