"""The id index: of rows sharing an id only the last is sent, however many rows the file has.

Each test runs with the ids in memory, in DuckDB from the first row, and moving to DuckDB part way.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connector.push.ids import MEMORY_ROWS, Duplicates, IdIndex

MEMORY = pytest.mark.parametrize("memory_rows", [MEMORY_ROWS, 0, 3], ids=["memory", "duckdb", "moved"])


@MEMORY
def test_rows_a_later_row_repeats_are_superseded(memory_rows: int) -> None:
    with IdIndex(memory_rows) as ids:
        ids.extend([1, 2, 3, 4], ["a", "b", "a", "c"])
        ids.extend([5, 6, 7], ["b", "a", "d"])
        assert ids.duplicates() == Duplicates(rows=3, example_id="a", example_rows=[1, 3, 6])
        assert list(ids.superseded_rows()) == [1, 2, 3]


@MEMORY
def test_unique_ids_supersede_nothing(memory_rows: int) -> None:
    with IdIndex(memory_rows) as ids:
        ids.extend(range(10), [f"id-{row}" for row in range(10)])
        assert ids.duplicates() == Duplicates()
        assert list(ids.superseded_rows()) == []


@MEMORY
def test_the_example_lists_the_first_rows_of_its_id(memory_rows: int) -> None:
    with IdIndex(memory_rows) as ids:
        ids.extend(range(8), ["same"] * 8)
        assert ids.duplicates() == Duplicates(rows=7, example_id="same", example_rows=[0, 1, 2, 3, 4])


@MEMORY
def test_a_cleared_index_forgets_every_row(memory_rows: int) -> None:
    with IdIndex(memory_rows) as ids:
        ids.extend(range(5), ["x"] * 5)
        ids.clear()
        ids.extend([0, 1], ["x", "y"])
        assert ids.duplicates() == Duplicates()


@pytest.mark.parametrize("memory_rows", [MEMORY_ROWS, 100_000], ids=["memory", "moved"])
def test_more_rows_than_one_append_are_indexed_and_streamed(memory_rows: int) -> None:
    rows, distinct = 150_000, 70_000
    with IdIndex(memory_rows) as ids:
        # In chunks of a push's size, so that the pending rows reach the bulk append several times.
        for start in range(0, rows, 1024):
            chunk = range(start, min(start + 1024, rows))
            ids.extend(chunk, [str(row % distinct) for row in chunk])
        duplicates = ids.duplicates()
        superseded = list(ids.superseded_rows())
    assert (duplicates.rows, duplicates.example_id, duplicates.example_rows) == (
        rows - distinct,
        "0",
        [0, distinct, 2 * distinct],
    )
    assert superseded == list(range(rows - distinct))


@given(
    ids=st.lists(st.sampled_from("abcdefg"), max_size=40),
    memory_rows=st.integers(0, 45),
    chunk=st.integers(1, 7),
)
def test_memory_and_duckdb_find_the_same_duplicates(ids: list[str], memory_rows: int, chunk: int) -> None:
    last_row = {event_id: row for row, event_id in enumerate(ids)}
    expected = [row for row, event_id in enumerate(ids) if last_row[event_id] != row]
    with IdIndex(memory_rows) as index:
        for start in range(0, len(ids), chunk):
            index.extend(range(start, min(start + chunk, len(ids))), ids[start : start + chunk])
        duplicates = index.duplicates()
        assert list(index.superseded_rows()) == expected
    assert duplicates.rows == len(expected)
    if expected:
        example = ids[expected[0]]
        assert duplicates.example_id == example
        assert duplicates.example_rows == [row for row, event_id in enumerate(ids) if event_id == example][:5]
    else:
        assert duplicates == Duplicates()
