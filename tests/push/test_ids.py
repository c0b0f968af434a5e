"""The id index: of rows sharing an id only the last is sent, however many rows the file has."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connector.push.ids import Duplicates, IdIndex, RefusedLast

# Where the index keeps its ids: a dict, DuckDB from the first row, and a dict that moves to DuckDB.
WHERE = pytest.mark.parametrize("memory_ids", [1_000_000, 0, 3], ids=["dict", "duckdb", "moved"])


@WHERE
def test_rows_a_later_row_repeats_are_superseded(memory_ids: int) -> None:
    with IdIndex(memory_ids) as ids:
        ids.extend([1, 2, 3, 4], ["a", "b", "a", "c"])
        ids.extend([5, 6, 7], ["b", "a", "d"])
        assert ids.duplicates() == Duplicates(rows=3, example_id="a", example_rows=[1, 3, 6])
        assert list(ids.superseded_rows()) == [1, 2, 3]


@WHERE
def test_a_refused_row_last_of_its_id_supersedes_the_valid_rows_before_it(memory_ids: int) -> None:
    with IdIndex(memory_ids) as ids:
        ids.extend([1, 2], ["a", "b"])
        ids.refuse({3: "a", 4: "c"})  # "c" has no valid row: nothing to supersede
        ids.extend([5, 6], ["b", "d"])
        ids.refuse({7: "d", 8: "b"})
        ids.extend([9], ["b"])  # a valid row after the refused one: it is the last of "b"
        assert ids.duplicates() == Duplicates(rows=4, example_id="a", example_rows=[1, 3])
        assert list(ids.superseded_rows()) == [1, 2, 5, 6]
        assert ids.refused_last() == RefusedLast(ids=2, example_id="a", example_row=3)


@WHERE
def test_a_refused_row_replaces_nothing_when_the_rows_before_it_were_sent(memory_ids: int) -> None:
    with IdIndex(memory_ids, refused_replace=False) as ids:
        ids.extend([1, 2], ["a", "b"])
        ids.refuse({3: "a"})
        ids.extend([4], ["b"])
        assert ids.duplicates() == Duplicates(rows=1, example_id="b", example_rows=[2, 4])
        assert ids.refused_last() == RefusedLast(ids=1, example_id="a", example_row=3)


@WHERE
def test_no_refused_row_after_its_ids_valid_rows_is_none_found(memory_ids: int) -> None:
    with IdIndex(memory_ids) as ids:
        ids.refuse({1: "a"})
        ids.extend([2, 3], ["a", "b"])
        ids.refuse({4: "z"})
        assert ids.duplicates() == Duplicates()
        assert ids.refused_last() == RefusedLast()


@WHERE
def test_the_ids_whose_earlier_rows_were_left_out_are_found(memory_ids: int) -> None:
    with IdIndex(memory_ids) as ids:
        ids.extend([1, 2, 3, 4, 5], ["a", "b", "a", "c", "a"])
        ids.duplicates()
        assert ids.left_out_for(["a", "c", "z"]) == {"a"}
        assert ids.left_out_for([]) == set()


@WHERE
def test_unique_ids_supersede_nothing(memory_ids: int) -> None:
    with IdIndex(memory_ids) as ids:
        ids.extend(range(10), [f"id-{row}" for row in range(10)])
        assert ids.duplicates() == Duplicates()
        assert list(ids.superseded_rows()) == []


@WHERE
def test_the_example_lists_the_first_rows_of_its_id(memory_ids: int) -> None:
    with IdIndex(memory_ids) as ids:
        ids.extend(range(8), ["same"] * 8)
        assert ids.duplicates() == Duplicates(rows=7, example_id="same", example_rows=[0, 1, 2, 3, 4])


@WHERE
def test_a_cleared_index_forgets_every_row(memory_ids: int) -> None:
    with IdIndex(memory_ids) as ids:
        ids.extend(range(5), ["x"] * 5)
        ids.clear()
        ids.extend([0, 1], ["x", "y"])
        assert ids.duplicates() == Duplicates()


@pytest.mark.parametrize("memory_ids", [1_000_000, 0, 50_000], ids=["dict", "duckdb", "moved"])
def test_more_rows_than_one_append_are_indexed_and_streamed(memory_ids: int) -> None:
    rows, distinct = 150_000, 70_000
    with IdIndex(memory_ids) as ids:
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


@settings(max_examples=60, deadline=None)
@given(
    chunks=st.lists(st.lists(st.sampled_from("abcdefgh"), max_size=12), max_size=8),
    memory_ids=st.integers(0, 40),
)
def test_every_place_finds_what_a_plain_count_of_ids_finds(chunks: list[list[str]], memory_ids: int) -> None:
    numbered = list(enumerate(id_ for chunk in chunks for id_ in chunk))
    last = {id_: row for row, id_ in numbered}
    superseded = [row for row, id_ in numbered if last[id_] != row]
    with IdIndex(memory_ids) as ids:
        start = 0
        for chunk in chunks:
            ids.extend(range(start, start + len(chunk)), chunk)
            start += len(chunk)
        duplicates = ids.duplicates()
        assert list(ids.superseded_rows()) == superseded
    assert duplicates.rows == len(superseded)
    if superseded:
        example = numbered[superseded[0]][1]
        assert duplicates.example_id == example
        assert duplicates.example_rows == [row for row, id_ in numbered if id_ == example][:5]
    else:
        assert duplicates == Duplicates()


@pytest.mark.parametrize(("memory_ids", "spills"), [(4, False), (3, True)])
def test_past_its_bound_the_index_moves_to_duckdb_and_cleans_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, memory_ids: int, spills: bool
) -> None:
    # DuckDB's spill directory is what shows the ids left the dict (a dict makes no file).
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with IdIndex(memory_ids) as ids:
        ids.extend(range(4), ["a", "b", "c", "d"])
        assert bool(list(tmp_path.glob("bt-sync-push-ids-*"))) is spills
    assert list(tmp_path.iterdir()) == []
