"""The id index: of rows sharing an id only the last is sent, however many rows the file has."""

from __future__ import annotations

from connector.push.ids import Duplicates, IdIndex


def test_rows_a_later_row_repeats_are_superseded() -> None:
    with IdIndex() as ids:
        ids.extend([1, 2, 3, 4], ["a", "b", "a", "c"])
        ids.extend([5, 6, 7], ["b", "a", "d"])
        assert ids.duplicates() == Duplicates(rows=3, example_id="a", example_rows=[1, 3, 6])
        assert list(ids.superseded_rows()) == [1, 2, 3]


def test_unique_ids_supersede_nothing() -> None:
    with IdIndex() as ids:
        ids.extend(range(10), [f"id-{row}" for row in range(10)])
        assert ids.duplicates() == Duplicates()
        assert list(ids.superseded_rows()) == []


def test_the_example_lists_the_first_rows_of_its_id() -> None:
    with IdIndex() as ids:
        ids.extend(range(8), ["same"] * 8)
        assert ids.duplicates() == Duplicates(rows=7, example_id="same", example_rows=[0, 1, 2, 3, 4])


def test_a_cleared_index_forgets_every_row() -> None:
    with IdIndex() as ids:
        ids.extend(range(5), ["x"] * 5)
        ids.clear()
        ids.extend([0, 1], ["x", "y"])
        assert ids.duplicates() == Duplicates()


def test_more_rows_than_one_append_are_indexed_and_streamed() -> None:
    rows, distinct = 150_000, 70_000
    with IdIndex() as ids:
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
