"""The process's shared in-memory DuckDB: each connection sees only what it registered, in UTC."""

from __future__ import annotations

import duckdb
import pyarrow as pa
import pytest

from connector.destinations.scratch import scratch_connection


def test_a_connection_sees_nothing_another_registered_and_reads_time_in_utc() -> None:
    with scratch_connection() as first:
        first.register("rows", pa.table({"x": [1, 2]}))
        first.execute("SET TimeZone = 'Asia/Tokyo'")
        with scratch_connection() as second:
            with pytest.raises(duckdb.CatalogException):
                second.execute("SELECT * FROM rows")
            assert second.execute("SELECT TIMESTAMPTZ '2025-06-02 09:00:00+00'::VARCHAR").fetchone() == (
                "2025-06-02 09:00:00+00",
            )
        assert first.execute("SELECT sum(x) FROM rows").fetchone() == (3,)
    with scratch_connection() as later, pytest.raises(duckdb.CatalogException):
        later.execute("SELECT * FROM rows")
