"""Shaping fetch pages for staging: cutoff, `_extra`, and values that do not fit their column."""

from __future__ import annotations

import duckdb
import orjson
import pyarrow as pa

from connector.sync.shape import RowShaper
from schemas.tables import PROJECT_LOGS, json_struct


def shape(events: list[dict], cutoff: int | None = None) -> pa.RecordBatch:
    return RowShaper(PROJECT_LOGS.payload_columns).shape(events, cutoff)


def test_versions_at_or_below_the_cutoff_are_dropped() -> None:
    events = [{"id": "a", "_xact_id": "1000000000"}, {"id": "b", "_xact_id": "999999999"}]
    assert shape(events, cutoff=999_999_999).column("id").to_pylist() == ["a"]


def test_unknown_keys_and_misfit_values_go_to_extra() -> None:
    batch = shape(
        [
            {"id": "ok", "_xact_id": "5", "scores": {"acc": 0.5, "f1": None}, "tags": ["x"]},
            {
                "id": "odd",
                "_xact_id": "6",
                "scores": {"acc": "high"},
                "tags": "x,y",
                "is_root": "yes",
                "new": [1],
            },
            {"id": "bool-score", "_xact_id": "7", "scores": {"acc": True}},
        ]
    )
    extras = [None if e is None else orjson.loads(e) for e in batch.column("_extra").to_pylist()]
    assert extras[0] is None
    assert extras[1] == {"scores": {"acc": "high"}, "tags": "x,y", "is_root": "yes", "new": [1]}
    assert extras[2] == {"scores": {"acc": True}}


def test_duckdb_types_the_raw_json_into_table_columns() -> None:
    batch = shape(
        [
            {
                "id": "a",
                "_xact_id": "1000196408583467833",
                "created": "2025-01-02T03:04:05.123Z",
                "scores": {"acc": 0.25},
                "input": {"q": [1, 2]},
                "span_parents": ["p"],
                "is_root": False,
            }
        ]
    )
    struct = json_struct(PROJECT_LOGS.payload_columns)
    with duckdb.connect() as con:
        con.register("staged", pa.Table.from_batches([batch]))
        row = con.execute(
            "SELECT s.scores['acc'], s.input->>'$.q[1]', s.span_parents, s.is_root, year(s.created), "
            "_xact_id "
            f"FROM (SELECT _xact_id, json_transform(_raw, '{struct}') AS s FROM staged)"
        ).fetchone()
    assert row == (0.25, "2", ["p"], False, 2025, 1000196408583467833)
