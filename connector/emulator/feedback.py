"""`POST /v1/{object_type}/{id}/feedback`: feedback items as the events the SDK's `log_feedback` writes.

Both ways of giving feedback end the same: a merge of the item's scores,
expected and tags carrying `_audit_source` and `_audit_metadata`, and a comment
event about the row (SDK `logger._log_feedback_impl`), so the store handles
feedback in one place.
"""

from __future__ import annotations

from typing import Any

from connector.emulator.errors import bad_request
from connector.emulator.rows import AUDIT_SOURCES, Row, new_id
from connector.emulator.store import ObjectType

# Row fields a feedback item may update, per object type (spec: Feedback*Item).
_UPDATES: dict[ObjectType, tuple[str, ...]] = {
    "project_logs": ("scores", "expected", "tags"),
    "experiment": ("scores", "expected", "tags"),
    "dataset": ("tags",),
}


def feedback_events(object_type: ObjectType, body: Any) -> list[Row]:
    """Return the events that apply a feedback request body.

    Raises:
        Rejected: 400 for a malformed body or item.
    """
    if not isinstance(body, dict) or not isinstance(body.get("feedback"), list):
        raise bad_request('the body must be {"feedback": [...]}')
    return [
        event
        for index, item in enumerate(body["feedback"])
        for event in _item_events(object_type, item, f"feedback[{index}]")
    ]


def _item_events(object_type: ObjectType, item: Any, where: str) -> list[Row]:
    _check_item(object_type, item, where)
    audit = {"_audit_source": item.get("source") or "external", "_audit_metadata": item.get("metadata")}
    update = {field: item[field] for field in _UPDATES[object_type] if item.get(field) is not None}
    events: list[Row] = [{"id": item["id"], "_is_merge": True, **update, **audit}] if update else []
    if item.get("comment") is not None:
        comment = {"text": item["comment"]}
        events.append({"id": new_id(), "origin": {"id": item["id"]}, "comment": comment, **audit})
    if not events:
        fields = ", ".join((*_UPDATES[object_type], "comment"))
        raise bad_request(f"{where} gives no feedback: set one of {fields}")
    return events


def _check_item(object_type: ObjectType, item: Any, where: str) -> None:
    if not isinstance(item, dict) or not isinstance(item.get("id"), str):
        raise bad_request(f"{where} must be an object with the id of the row it is about")
    refused = [
        field
        for field in ("scores", "expected")
        if item.get(field) is not None and field not in _UPDATES[object_type]
    ]
    if refused:
        raise bad_request(f"{where}: {object_type} feedback takes no {' or '.join(refused)}")
    if item.get("comment") is not None and not isinstance(item["comment"], str):
        raise bad_request(f"{where}.comment must be a string")
    if item.get("source") not in (None, *AUDIT_SOURCES):
        raise bad_request(f"{where}.source must be one of {', '.join(AUDIT_SOURCES)}")
    if item.get("metadata") is not None and not isinstance(item["metadata"], dict):
        raise bad_request(f"{where}.metadata must be an object")
