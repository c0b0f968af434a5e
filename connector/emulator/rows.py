"""Insert semantics: check events, then turn them into new row versions.

Braintrust rows are versioned: each insert request writes one new version of
every row it touches. An event either replaces the row (the default), deep-merges
into its latest version (`_is_merge`), or deletes it (`_object_delete`).

Feedback, as the SDK writes it, rides on the same events: `_audit_source` and
`_audit_metadata` on an update become an entry of the row's `audit_data`, and a
comment event (`comment` plus `origin.id`) becomes an entry of its target row's
`comments`. The emulator keeps both on the row rather than as rows of their own,
so a fetch (and a sync) sees them where they belong.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from connector.emulator import json_text
from connector.emulator.errors import bad_request
from connector.emulator.merge import deep_merge, without_values

# Every id the server makes (a row's, a span's, a comment's, an object's) comes from a generator of
# its own rather than `uuid.uuid4`, whose `os.urandom` releases the GIL at every call: with concurrent
# inserts, each call handed the interpreter to another request's thread. `uuid4` was 16% of the
# emulator's samples in a push at concurrency 4 (py-spy), and its CPU for the push 8.9-9.4 s
# against 7.0-7.7 s now.
_IDS = random.Random()

Row = dict[str, Any]

# Instructions to the server, never stored in a row.
CONTROL_FIELDS = frozenset(
    {
        "_is_merge",
        "_object_delete",
        "_merge_paths",
        "_array_delete",
        "_parent_id",
        "_audit_source",
        "_audit_metadata",
    }
)
# The row's feedback trail: kept across replaces and merges, appended to by feedback only.
TRAIL_FIELDS = frozenset({"comments", "audit_data"})
# Written by the server only; whatever a client sends for them is dropped.
SERVER_FIELDS = frozenset({"_xact_id", "_pagination_key"}) | TRAIL_FIELDS
# A merge keeps these from the row's first write, as the SDK and the spec say.
MERGE_KEEPS = frozenset({"id", "created", "span_id", "root_span_id", "span_parents"})
_NOT_MERGED = CONTROL_FIELDS | SERVER_FIELDS | MERGE_KEEPS
_NOT_STORED = CONTROL_FIELDS | SERVER_FIELDS


def _is_str(value: Any) -> bool:
    return isinstance(value, str)


def _is_bool(value: Any) -> bool:
    return isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_object(value: Any) -> bool:
    return isinstance(value, dict)


def _is_str_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def _is_scores(value: Any) -> bool:
    return isinstance(value, dict) and all(
        score is None or (_is_number(score) and 0 <= score <= 1) for score in value.values()
    )


# Who gave a piece of feedback (spec: the `source` of Feedback*Item).
AUDIT_SOURCES = ("app", "api", "external")
# The spec lets these metrics be null; any other metric must be a number.
_NULLABLE_METRICS = frozenset({"start", "end", "prompt_tokens", "completion_tokens", "tokens"})
# The spec's span types, and those the SDK (0.47's `SpanType`) writes beyond them: `log`
# (`Logger.emit_log`), `decision` and `question`. Refusing one would lose its whole batch.
_SPAN_TYPES = frozenset(
    {
        "log",
        "decision",
        "question",
        "llm",
        "score",
        "function",
        "eval",
        "task",
        "tool",
        "automation",
        "facet",
        "preprocessor",
        "classifier",
        "review",
    }
)


def _is_metrics(value: Any) -> bool:
    return isinstance(value, dict) and all(
        _is_number(metric) or (metric is None and name in _NULLABLE_METRICS) for name, metric in value.items()
    )


def _is_span_attributes(value: Any) -> bool:
    return isinstance(value, dict) and value.get("type") in _SPAN_TYPES | {None}


def _is_path(value: Any) -> bool:
    return _is_str_list(value) and len(value) > 0


def _is_paths(value: Any) -> bool:
    return isinstance(value, list) and all(_is_path(path) for path in value)


def _is_array_deletes(value: Any) -> bool:
    return isinstance(value, list) and all(
        isinstance(item, dict) and _is_path(item.get("path")) and isinstance(item.get("delete"), list)
        for item in value
    )


def _is_audit_source(value: Any) -> bool:
    return value in AUDIT_SOURCES


def _is_comment(value: Any) -> bool:
    return isinstance(value, dict) and isinstance(value.get("text"), str)


def _is_timestamp(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


# Field shapes from the spec's Insert*Event schemas; checked so that fetched rows
# validate against the spec's *Event schemas later. Every field may also be null.
_CHECKS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "id": (_is_str, "a string"),
    "created": (_is_timestamp, "an ISO-8601 timestamp"),
    "span_id": (_is_str, "a string"),
    "root_span_id": (_is_str, "a string"),
    "_parent_id": (_is_str, "a string"),
    "span_parents": (_is_str_list, "an array of strings"),
    "tags": (_is_str_list, "an array of strings"),
    "scores": (_is_scores, "an object of numbers between 0 and 1 (or null)"),
    "metrics": (_is_metrics, "an object of numbers"),
    "span_attributes": (
        _is_span_attributes,
        f"an object whose type is one of {', '.join(sorted(_SPAN_TYPES))}",
    ),
    "metadata": (_is_object, "an object"),
    "context": (_is_object, "an object"),
    "facets": (_is_object, "an object"),
    "origin": (_is_object, "an object"),
    "is_root": (_is_bool, "true or false"),
    "_is_merge": (_is_bool, "true or false"),
    "_object_delete": (_is_bool, "true or false"),
    "_merge_paths": (_is_paths, "an array of non-empty arrays of strings"),
    "_array_delete": (_is_array_deletes, 'an array of {"path": [...], "delete": [...]}'),
    "_audit_source": (_is_audit_source, f"one of {', '.join(AUDIT_SOURCES)}"),
    "_audit_metadata": (_is_object, "an object"),
    "comment": (_is_comment, 'an object {"text": "..."}'),
}


def check_events(events: Any, name: str = "events") -> list[Row]:
    """Return `events` if it is a list of well-formed events.

    Args:
        events: the events of one request.
        name: what the request calls them, for error messages ("events", "rows").

    Raises:
        Rejected: 400 naming the first bad event and field.
    """
    if not isinstance(events, list):
        raise bad_request(f"`{name}` must be an array of event objects")
    for index, event in enumerate(events):
        where = f"{name}[{index}]"
        if not isinstance(event, dict):
            raise bad_request(f"{where} must be a JSON object, got {type(event).__name__}")
        for field, (check, shape) in _CHECKS.items():
            value = event.get(field)
            if value is not None and not check(value):
                raise bad_request(f"{where}.{field} must be {shape}")
        if event.get("_object_delete") and not event.get("id"):
            raise bad_request(f"{where}: _object_delete needs the id of the row to delete")
        if event.get("comment") is not None and not isinstance((event.get("origin") or {}).get("id"), str):
            raise bad_request(f"{where}: a comment needs origin.id, the id of the row it is about")
    return events


def serialize(row: Row) -> bytes:
    """Return `row` as JSON bytes sized to fit, for keeping in memory."""
    # orjson's output buffer keeps its initial capacity: stored as-is, a 1 KB
    # row would hold ~8 KB of memory. The copy is exactly as long as the JSON.
    return bytes(memoryview(json_text.dumps(row)))


def utc_timestamp(value: str | None = None) -> str:
    """Return `value` (or now) as an ISO-8601 timestamp with a timezone, as fetch returns it."""
    moment = datetime.now(UTC) if value is None else datetime.fromisoformat(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Outcome:
    """What one insert request does to an object's rows.

    Attributes:
        row_ids: the id of each input event, in input order.
        rows: the new version of each row the request leaves in place (one per id).
        deleted: ids the request deleted (a later event in the same request may re-create one).
    """

    row_ids: list[str]
    rows: list[Row]
    deleted: list[str]


def apply_events(
    events: list[Row], latest: Callable[[str], Row | None], xact: int, waiting: dict[str, list[Row]]
) -> Outcome:
    """Apply checked `events` in order, given `latest(id)`, the stored live version of a row.

    Events for the same id are applied one after the other, so the request writes
    a single version per id (the SDK relies on this: versions sharing an
    `_xact_id` could not be told apart). `xact` is the request's `_xact_id`, which
    feedback entries record.

    A comment on a row that does not exist waits in `waiting` (the object's, by row id) and
    joins the row when it is written: the SDK sends a flush's batches in parallel, so a comment
    may arrive before its row, and Braintrust keeps a comment as a row of its own.
    """
    now = utc_timestamp()
    state: dict[str, Row | None] = {}
    deleted: dict[str, None] = {}
    row_ids: list[str] = []

    def current(row_id: str) -> Row | None:
        return state[row_id] if row_id in state else latest(row_id)

    for event in events:
        row_id = event.get("id") or new_id()
        row_ids.append(row_id)
        if event.get("comment") is not None:
            target_id, comment = event["origin"]["id"], _comment(row_id, event, xact, now)
            target = current(target_id)
            if target is None:
                waiting_on_it = {"comments": waiting.get(target_id)}
                waiting[target_id] = _with_comments(waiting_on_it, [comment])["comments"]
            else:
                state[target_id] = _with_comments(target, [comment])
            continue
        previous = current(row_id)
        if event.get("_object_delete"):
            state[row_id] = None
            deleted[row_id] = None
            continue
        if event.get("_is_merge") and previous is not None:
            row = _merged(previous, event)
        else:
            parent_id = event.get("_parent_id")
            parent = current(parent_id) if parent_id else None
            row = _replaced(row_id, previous, event, parent, now)
        row = _audited(row, event, xact, now)
        state[row_id] = _with_comments(row, waiting.pop(row_id)) if row_id in waiting else row
    rows = [row for row in state.values() if row is not None]
    return Outcome(row_ids=row_ids, rows=rows, deleted=list(deleted))


def _trail_entry(event: Row, xact: int, created: str) -> Row:
    """What the row's trail records of any piece of feedback: its version, time, source and metadata."""
    return {
        "_xact_id": str(xact),
        "created": created,
        "source": event.get("_audit_source") or "external",
        "metadata": event.get("_audit_metadata"),
    }


def _audited(row: Row, event: Row, xact: int, now: str) -> Row:
    if event.get("_audit_source") is None and event.get("_audit_metadata") is None:
        return row
    entry = {**_trail_entry(event, xact, now), "action": "merge" if event.get("_is_merge") else "upsert"}
    return {**row, "audit_data": [*(row.get("audit_data") or []), entry]}


def _comment(comment_id: str, event: Row, xact: int, now: str) -> Row:
    """The entry of a row's `comments` that a comment event makes."""
    created = utc_timestamp(event["created"]) if event.get("created") else now
    return {"id": comment_id, **_trail_entry(event, xact, created), "comment": event["comment"]}


def _with_comments(target: Row, comments: list[Row]) -> Row:
    """`target` with `comments` added; one with the id of a comment it has replaces it (a retried write)."""
    ids = {comment["id"] for comment in comments}
    kept = [comment for comment in target.get("comments") or [] if comment.get("id") not in ids]
    return {**target, "comments": [*kept, *comments]}


def _merged(previous: Row, event: Row) -> Row:
    stop_at = {tuple(path) for path in event.get("_merge_paths") or ()}
    row = deep_merge(previous, {k: v for k, v in event.items() if k not in _NOT_MERGED}, stop_at)
    tags, added = previous.get("tags"), event.get("tags")
    if isinstance(tags, list) and isinstance(added, list) and ("tags",) not in stop_at:
        # Tags merge as a set, as the SDK merges the rows of one batch (its `_SET_UNION_FIELDS`): a tag
        # added later (`log_feedback(tags=…)`, `dataset.update`) adds to the row's, whatever the batches.
        row["tags"] = list(dict.fromkeys([*tags, *added]))
    for array_delete in event.get("_array_delete") or ():
        row = without_values(row, tuple(array_delete["path"]), array_delete["delete"])
    return row


def _replaced(row_id: str, previous: Row | None, event: Row, parent: Row | None, now: str) -> Row:
    row = {k: v for k, v in event.items() if k not in _NOT_STORED}
    row["id"] = row_id
    # A replace that leaves out the server-filled fields keeps the row in its
    # place: same creation time, same trace.
    before = previous or {}
    created = event.get("created")
    row["created"] = utc_timestamp(created) if created else before.get("created", now)
    span_id = row.get("span_id") or before.get("span_id") or new_id()
    row["span_id"] = span_id
    if parent is not None and not event.get("span_parents"):
        row["span_parents"] = [parent["span_id"]]
    inherited = parent["root_span_id"] if parent is not None else before.get("root_span_id")
    row["root_span_id"] = row.get("root_span_id") or inherited or span_id
    if row.get("is_root") is None:
        row["is_root"] = not row.get("span_parents")
    row.update({field: before[field] for field in TRAIL_FIELDS if before.get(field)})
    return row


def uuid4_text(bits: int) -> str:
    """128 random bits as a uuid4's text (formatted by hand: `uuid.UUID` costs more than a row)."""
    digits = f"{bits:032x}"
    return f"{digits[:8]}-{digits[8:12]}-4{digits[13:16]}-a{digits[17:20]}-{digits[20:]}"


def new_id() -> str:
    """A new random id in uuid4 form."""
    return uuid4_text(_IDS.getrandbits(128))
