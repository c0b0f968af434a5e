"""Which event table a query's rows came from, read off its columns, and the `origin` each row gets."""

from __future__ import annotations

import pytest

from connector.push.origin import BadOrigin, OriginColumns, find_origin


@pytest.mark.parametrize(
    ("columns", "expected"),
    [
        (
            ["id", "project_id", "_xact_id", "input"],
            OriginColumns("project_logs", "project_id", xact_id="_xact_id"),
        ),
        (["id", "project_id", "experiment_id", "input"], OriginColumns("experiment", "experiment_id")),
        (["dataset_id", "id", "project_id", "expected"], OriginColumns("dataset", "dataset_id")),
        (["id", "input"], None),
        (["project_id", "input", "_xact_id"], None),
        # Two specific object columns name no single table.
        (["id", "experiment_id", "dataset_id"], None),
    ],
)
def test_the_object_column_names_the_table(columns: list[str], expected: OriginColumns | None) -> None:
    assert find_origin(columns) == expected


def test_a_row_s_origin() -> None:
    origin = OriginColumns("experiment", "experiment_id", xact_id="_xact_id")
    row = {"id": "e1", "experiment_id": "x1", "_xact_id": 1000192, "input": "q"}
    assert origin.of(row) == {
        "object_type": "experiment",
        "object_id": "x1",
        "id": "e1",
        "_xact_id": "1000192",
    }
    assert origin.of({**row, "_xact_id": None}) == {
        "object_type": "experiment",
        "object_id": "x1",
        "id": "e1",
    }
    # Text is sent as the API writes a version: its digits without leading zeros.
    assert origin.of({**row, "_xact_id": "0001000192"})["_xact_id"] == "1000192"  # type: ignore[index]
    # An outer join's unmatched row links to nothing.
    assert origin.of({**row, "experiment_id": None}) is None
    assert origin.columns() == {"id", "experiment_id", "_xact_id"}


@pytest.mark.parametrize(
    ("row", "column"),
    [
        ({"id": 7, "experiment_id": "x1"}, "id"),
        ({"id": "e1", "experiment_id": ""}, "experiment_id"),
        ({"id": "e1", "experiment_id": "x1", "_xact_id": -1}, "_xact_id"),
        ({"id": "e1", "experiment_id": "x1", "_xact_id": "12a"}, "_xact_id"),
        ({"id": "e1", "experiment_id": "x1", "_xact_id": "١٢"}, "_xact_id"),
        ({"id": "e1", "experiment_id": "x1", "_xact_id": 2**64}, "_xact_id"),
        ({"id": "e1", "experiment_id": "x1", "_xact_id": True}, "_xact_id"),
    ],
)
def test_values_an_origin_cannot_hold(row: dict[str, object], column: str) -> None:
    with pytest.raises(BadOrigin) as bad:
        OriginColumns("experiment", "experiment_id", xact_id="_xact_id").of(row)
    assert bad.value.column == column
