"""The id index: of rows sharing an id only the last is sent, however many rows the file has."""

from __future__ import annotations

from connector.push.ids import Duplicates, IdIndex


def test_rows_a_later_row_repeats_are_superseded() -> None:
    with IdIndex() as ids:
        for row, event_id in enumerate(["a", "b", "a", "c", "b", "a", "d"], start=1):
            ids.add(row, event_id)
        assert ids.duplicates() == Duplicates(rows=3, example_id="a", example_rows=[1, 3, 6])
        assert list(ids.superseded_rows()) == [1, 2, 3]


def test_unique_ids_supersede_nothing() -> None:
    with IdIndex() as ids:
        for row in range(10):
            ids.add(row, f"id-{row}")
        assert ids.duplicates() == Duplicates()
        assert list(ids.superseded_rows()) == []


def test_the_example_lists_the_first_rows_of_its_id() -> None:
    with IdIndex() as ids:
        for row in range(8):
            ids.add(row, "same")
        assert ids.duplicates() == Duplicates(rows=7, example_id="same", example_rows=[0, 1, 2, 3, 4])


def test_a_cleared_index_forgets_every_row() -> None:
    with IdIndex() as ids:
        for row in range(5):
            ids.add(row, "x")
        ids.clear()
        ids.add(0, "x")
        ids.add(1, "y")
        assert ids.duplicates() == Duplicates()


def test_more_rows_than_one_append_are_indexed_and_streamed() -> None:
    rows, distinct = 150_000, 70_000
    with IdIndex() as ids:
        for row in range(rows):
            ids.add(row, str(row % distinct))
        duplicates = ids.duplicates()
        superseded = list(ids.superseded_rows())
    assert (duplicates.rows, duplicates.example_id, duplicates.example_rows) == (
        rows - distinct,
        "0",
        [0, distinct, 2 * distinct],
    )
    assert superseded == list(range(rows - distinct))
