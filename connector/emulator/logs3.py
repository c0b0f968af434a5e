"""The SDK's write path: `POST /logs3` rows, each naming the object it belongs to.

The `braintrust` SDK never calls `/v1/*/insert`. It batches every write (log
rows, span updates, experiment rows, dataset records, feedback, comments,
deletes) into `{"rows": [...], "api_version": 2}` (SDK `construct_logs3_data`)
and names each row's object by its id fields (SDK `span_identifier_v3`
`object_id_fields`). Here the rows are grouped per object, in order, to be
written as one request.
"""

from __future__ import annotations

from typing import Any

from connector.emulator.errors import bad_request
from connector.emulator.rows import Row, check_events
from connector.emulator.store import Events, ObjectType

# The row format the SDK sends (SDK `DATA_API_VERSION`).
API_VERSION = 2
# Fields that name an experiment's or a dataset's row; project logs take `project_id` and `log_id: "g"`.
_ID_FIELDS: tuple[tuple[str, ObjectType], ...] = (("experiment_id", "experiment"), ("dataset_id", "dataset"))


def logs3_batches(body: Any) -> list[Events]:
    """Return the rows of a `/logs3` body grouped by the object they name, each group in request order.

    Raises:
        Rejected: 400 for a malformed body or a row that names no object the emulator serves.
    """
    if not isinstance(body, dict) or "rows" not in body:
        raise bad_request(f'the body must be {{"rows": [...], "api_version": {API_VERSION}}}')
    if body.get("api_version") != API_VERSION:
        raise bad_request(f"api_version {body.get('api_version')!r} is not served; send {API_VERSION}")
    rows = body["rows"]
    grouped: dict[tuple[ObjectType, str], list[Row]] = {}
    for index, row in enumerate(check_events(rows, "rows")):
        grouped.setdefault(_object_of(row, index), []).append(row)
    return [Events(object_type, object_id, events) for (object_type, object_id), events in grouped.items()]


def _object_of(row: Row, index: int) -> tuple[ObjectType, str]:
    for field, object_type in _ID_FIELDS:
        if row.get(field) is not None:
            return object_type, _id(row, field, index)
    if row.get("project_id") is not None and row.get("log_id") == "g":
        return "project_logs", _id(row, "project_id", index)
    if row.get("prompt_session_id") is not None:
        raise bad_request(f"rows[{index}] is a playground log (prompt_session_id), which is not served")
    raise bad_request(
        f'rows[{index}] names no object: give experiment_id, dataset_id, or project_id with log_id "g"'
    )


def _id(row: Row, field: str, index: int) -> str:
    value = row[field]
    if not isinstance(value, str):
        raise bad_request(f"rows[{index}].{field} must be a string")
    return value
